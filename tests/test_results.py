"""Result files: appends are atomic and serialised, so benchmarks running side by side lose no record."""
import json
import threading

import pytest

from atom_plugin.results import append_records, read_records


def test_concurrent_appends_keep_every_record(tmp_path):
    path = tmp_path / "results" / "r.json"
    writers, each = 6, 15

    def write(w: int) -> None:
        for i in range(each):
            append_records(path, [{"writer": w, "i": i}])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = read_records(path)
    assert sorted((r["writer"], r["i"]) for r in records) == [(w, i) for w in range(writers) for i in range(each)]
    assert json.loads(path.read_text()) == records
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no lock or temporary file left behind


def test_markdown_table_is_the_one_table_syntax():
    from atom_plugin.errors import ConfigError
    from atom_plugin.results import markdown_table, records_table

    assert markdown_table(["a", "b"], [[1, ""], ["x", 2.5]]) == "| a | b |\n|---|---|\n| 1 |  |\n| x | 2.5 |"
    assert markdown_table(["only"], []) == "| only |\n|---|"
    with pytest.raises(ConfigError, match="row 1 has 1 cells for 2 `headers`"):
        markdown_table(["a", "b"], [[1, 2], [3]])
    recs = [dict(ipc=1, acc=70.123), dict(ipc=10)]
    assert records_table(recs, [("IPC", "ipc"), ("acc.", "{acc:.1f}"), ("none", "missing")]) == \
        "| IPC | acc. | none |\n|---|---|---|\n| 1 | 70.1 |  |\n| 10 |  |  |"


def test_result_records_and_provenance_read_the_versions_from_one_place(monkeypatch):
    import atom_plugin.results as results

    monkeypatch.setattr(results, "library_versions", lambda: dict(python="3.x", atom_plugin="9.9", torch="t"))
    env = results.environment("cpu")
    assert (env["python"], env["atom_plugin"], env["torch"]) == ("3.x", "9.9", "t")
    assert list(env) == ["device", "torch", "python", "atom_plugin", "date", "command", "freed_memory"]  # the layout


def test_replace_records_swaps_same_key_keeps_the_rest_in_order(tmp_path):
    from atom_plugin.results import append_records, read_records, replace_records

    path = tmp_path / "r.json"
    append_records(path, [dict(k=1, v="old"), dict(k=2, v="kept"), dict(k=1, v="older twin")])
    n = replace_records(path, [dict(k=1, v="new"), dict(k=3, v="added")], key=lambda r: r["k"])
    assert n == 2 and read_records(path) == [dict(k=2, v="kept"), dict(k=1, v="new"), dict(k=3, v="added")]
