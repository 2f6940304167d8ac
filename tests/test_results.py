"""Result files: appends are atomic and serialised, so benchmarks running side by side lose no record."""
import json
import threading

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
