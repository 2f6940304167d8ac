"""benchmarks/report.py: the target lines under the protocol table are computed, not written by hand; the README's
headline and the docs' result sections are generated from the committed records."""
import json

import pytest


@pytest.fixture(scope="module")
def report(load_benchmark):
    return load_benchmark("report")


def _rec(method, ipc, accs, iterations=200, factor=None, networks=None, seed=0, lr=None, init=None):
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5
    rec = dict(method=method, model="convnet", ipc=ipc, iterations=0 if method in ("herding", "random", "tiled-random")
               else iterations, device="cpu", num_models=len(accs), eval_epochs=300, seed=seed, accuracies=accs,
               accuracy_mean=mean, accuracy_std=std)
    if factor is not None:  # records written before factors existed have neither field
        rec.update(factor=factor, networks=networks)
    if lr is not None:  # records written before the images' lr was recorded used 1
        rec.update(lr_images=lr)
    if init is not None:  # records written before the start was recorded started from random real images
        rec.update(init=init, real_batch="uniform")
    return rec


def _line(text, ipc):
    return next(line for line in text.splitlines() if line.startswith((f"- IPC {ipc} ", f"- IPC {ipc}:")))


def test_targets_are_paired_by_evaluation_seed(report):
    recs = [_rec("atom", 10, [84.0, 84.3, 84.5], factor=2, networks="random"), _rec("dm", 10, [80.6, 81.0, 81.2]),
            _rec("tiled-random", 10, [72.0, 72.1, 72.2], factor=2),
            _rec("atom", 1, [70.0, 70.0, 70.0], factor=2, networks="random"),  # lr 1: not IPC 1's default
            _rec("atom", 1, [77.0, 77.5, 78.0], factor=2, networks="random", lr=0.3), _rec("dm", 1, [70.8, 71.2, 71.6]),
            _rec("dm", 1, [0.0, 0.0, 0.0], lr=0.3),  # nor today's dm
            _rec("atom", 50, [99.0, 99.0, 99.0]),  # a random real start: not IPC 50's default
            _rec("atom", 50, [86.4, 86.6, 86.8], init="herding"), _rec("dm", 50, [85.1, 85.5, 85.5]),
            _rec("herding", 50, [85.8, 86.0, 86.3])]
    text = report._targets(recs)
    ipc10, ipc1, ipc50 = _line(text, 10), _line(text, 1), _line(text, 50)
    assert "default − dm = +3.33 ± 0.06 (target ≥ +3) → **met**" in ipc10
    assert "default − tiled random = +12.17 ± 0.15 → **met**" in ipc10
    assert "default − dm = +6.30 ± 0.10 (target ≥ +6) → **met**" in ipc1 and "tiled random not measured" in ipc1
    assert "herding start" in ipc50 and "default − dm = +1.23 ± 0.12 (target ≥ +0.5) → **met**" in ipc50
    assert "default − herding = +0.57 ± 0.06 (target ≥ +0.3) → **met**" in ipc50
    assert report._levers(recs[7]) == "random real start" and report._levers(recs[8]) == ""
    assert report._levers(recs[9]) == ""  # dm's start is random real images at every IPC


def test_targets_need_the_mean_above_twice_the_paired_std_and_the_same_budget(report):
    noisy = [_rec("atom", 10, [85.0, 82.0, 85.5], factor=2, networks="random"), _rec("dm", 10, [80.6, 81.0, 81.2])]
    assert "→ **not met**" in _line(report._targets(noisy), 10)  # +3.23 on average but ± 1.9
    other = [_rec("atom", 10, [84.0, 84.0, 84.5], factor=2, networks="random"),
             _rec("dm", 10, [80.6, 81.0, 81.2], iterations=8000),
             _rec("dm", 10, [80.6, 81.0, 81.2], factor=2, networks="random")]  # neither is today's dm at this budget
    assert "dm not measured at this budget" in _line(report._targets(other), 10)
    plain_atom = [_rec("atom", 1, [71.0, 71.4, 71.8]), _rec("dm", 1, [70.8, 71.2, 71.6])]
    assert "the default (factor 2, random networks, image lr 0.3, random real start) not measured" in \
        _line(report._targets(plain_atom), 1)
    unpaired = [_rec("atom", 50, [86.4, 86.6, 86.8], init="herding"), _rec("herding", 50, [85.8, 86.0, 86.3], seed=1)]
    assert "herding not measured at this budget" in _line(report._targets(unpaired), 50)  # another seed


def test_the_ipc_figure_names_a_start_the_same_at_every_ipc(report):
    """A line of the IPC figure is one parametrisation across IPCs: plain factor-1 sets from random real images are
    one line (though at IPC 50 that start is no longer the default's), the default is one line, and a herding start
    off the default is named."""
    recs = [_rec("atom", ipc, [80.0, 80.0, 80.0], factor=1, networks="random", init="real") for ipc in (1, 10, 50)]
    recs += [_rec("atom", 50, [86.0, 86.0, 86.0], factor=1, networks="random", init="herding"),
             _rec("atom", 10, [83.0, 83.0, 83.0], factor=2, networks="random", init="real"),
             _rec("atom", 10, [84.0, 84.0, 84.0], factor=2, networks="random", init="herding")]
    series = {name: sorted(r["ipc"] for r in rs) for name, rs in report._ipc_series(recs).items()}
    assert series == {"atom (f 1, random)": [1, 10, 50], "atom default (per-IPC table)": [10, 50],
                      "atom (f 2, random, herding start)": [10]}


def test_speed_cells_read_block_timed_and_older_records(report):
    block = dict(ms_per_iter=4.0, ms_per_iter_min=3.9, ms_per_iter_max=4.4, blocks=3)
    assert report.speed_ms(block) == (4.0, "4.0 (3.9–4.4)")
    assert report.speed_ms(dict(block, blocks=1)) == (4.0, "4.0")
    old = dict(ms_per_iter_median=10.0, ms_per_iter_p10=9.0, ms_per_iter_p90=12.5)
    assert report.speed_ms(old) == (10.0, "10.0 (9.0–12.5)")


def test_pool_rows_name_their_steps_and_batch(report):
    """A pool's training per iteration is part of its row: records without it used ATOMConfig's defaults."""
    assert report._networks_label(dict(networks="pool", pool_steps=5, pool_batch=64)) == "pool (5 × 64)"
    assert report._networks_label(dict(networks="pool")) == "pool (1 × 256)"
    assert report._networks_label(dict(networks="random")) == "random"
    assert report._networks_label(dict(networks=None)) == "—"


def test_protocol_keys_keep_pool_settings_and_image_lr_apart_and_read_older_records_as_the_defaults(load_benchmark):
    mod = load_benchmark("fashion_mnist")
    base = dict(method="atom", ipc=1, factor=2, networks="pool", model="convnet", iterations=200, batch_real=64,
                eval_epochs=300, num_models=3, seed=0, device="cpu")
    older, default, pool5 = base, dict(base, pool_steps=1, pool_batch=256), dict(base, pool_steps=5, pool_batch=64)
    assert mod.key_of(older) == mod.key_of(default) != mod.key_of(pool5)
    random = dict(base, networks="random")
    assert mod.key_of(random)[4:6] == ("None", "None")
    # the images' lr: records written before it was recorded used 1; a selection has none
    assert mod.key_of(random) == mod.key_of(dict(random, lr_images=1.0)) != mod.key_of(dict(random, lr_images=0.3))
    assert mod.key_of(dict(base, method="random", networks=None))[6] == "None"


def test_the_headline_shows_the_default_dm_herding_and_random_at_one_budget(report, tmp_path, monkeypatch):
    recs = [dict(_rec("atom", 10, [83.0, 83.2], factor=2, networks="random"), split="test", batch_real=64),
            dict(_rec("atom", 10, [90.0, 90.0]), split="test", batch_real=64),  # plain atom: not the default
            dict(_rec("dm", 10, [80.0, 80.4]), split="test", batch_real=64),
            dict(_rec("dm", 10, [99.0, 99.0], iterations=8000), split="test", batch_real=64),  # another budget
            dict(_rec("random", 10, [77.0, 77.0]), split="test", factor=1),
            dict(_rec("tiled-random", 10, [60.0, 60.0]), split="test", factor=2)]
    (tmp_path / "fashion_mnist.json").write_text(json.dumps(recs))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    rows = {line.split(" | ")[0].strip("| "): line for line in report.headline_table().splitlines()}
    assert "| 83.10 ± 0.14 |" in rows["the default (`atom`, per-IPC table)"]
    assert "| 80.20 ± 0.28 |" in rows["`dm` (DM as published)"]
    assert "| 77.00 ± 0.00 |" in rows["random real images"] and rows["herding (coreset)"].count("—") == 3
    assert "Budget: 200 condensation iterations × 64 real images per class; 2 ConvNet-3 networks × 300 epochs" in \
        report.headline_table()
    assert "A reduced budget, not the published protocol (8000 iterations" in report.headline_table()


def test_generated_links_are_written_from_docs_and_rewritten_for_the_readme(report):
    body = "![f](figures/a.png) see [b](benchmarks.md#gpu-check), [u](https://x.org/a.md) and [here](#top)"
    text = "before\n<!-- results:x -->\nold\n<!-- /results:x -->\nafter\n"
    assert report.fill_text(text, {"x": body}) == text.replace("old", body)
    readme = report.fill_text(text, {"x": body}, in_docs=False)
    assert "](docs/figures/a.png)" in readme and "](docs/benchmarks.md#gpu-check)" in readme
    assert "](https://x.org/a.md)" in readme and "](#top)" in readme


def test_the_readme_and_docs_are_what_report_py_makes_of_the_committed_records(report):
    """Every number in the README and the docs' result sections comes from the committed records: regenerating them
    changes nothing (else: run python benchmarks/report.py and commit)."""
    report.DRAW = False  # figures are not compared
    bodies = {name: fn() for name, fn in report.SECTIONS.items()}
    stale = [doc for doc in report.DOCUMENTS
             if report.fill_text(text := (report.ROOT / doc).read_text(), bodies, in_docs=doc != "README.md") != text]
    results = report.ROOT / report.RESULTS_PAGE
    if report.fill_text(report.RESULTS_TEMPLATE, bodies) != results.read_text():
        stale.append(report.RESULTS_PAGE)
    assert not stale, f"out of date: {stale}; run python benchmarks/report.py"
    assert len((report.ROOT / "README.md").read_text().splitlines()) <= 150


def test_proxy_validity_renders_its_records_with_the_per_architecture_accuracies(report):
    common = dict(num_architectures=2, arch_seed=0, proxy_epochs=2, full_epochs=1, full_train_size=160, lr=0.01,
                  weight_decay=5e-4, batch_size=256, train_seed=0, val_size=50, bootstrap=10, quick=True,
                  device="cpu", torch="2.4", date="2026-12-01T00:00:00+00:00",
                  command="python benchmarks/proxy_validity.py --quick")
    recs = [dict(common, proxy="atom", ipc=2, spearman_all=1.0, candidates=[["d1", 40.0], ["d2", 30.0]]),
            dict(common, proxy="full", ipc=None, spearman_all=1.0, candidates=[["d1", 20.0], ["d2", 25.0]])]
    report.DRAW = False
    text = report.proxy_validity_markdown(recs, report._proxy_figure(recs, "p.png"))
    assert "2 architectures sampled (seed 0)" in text and "(10 resamples)" in text and "Quick CPU check" in text
    assert "![proxy vs full validation accuracy](figures/p.png)" in text
    per_arch = text[text.index("| architecture |"):].splitlines()
    assert per_arch[0] == "| architecture | atom ipc 2 | full |"
    assert per_arch[2:] == ["| d2 | 30.00 | 25.00 |", "| d1 | 40.00 | 20.00 |"]  # best on full data first
    old = [{k: v for k, v in r.items() if k != "candidates"} for r in recs]  # records from before candidates
    assert "| architecture |" not in report.proxy_validity_markdown(old) and report._proxy_figure(old, "p.png") == ""
