"""The ``atom`` command line: in-process through ``main(argv)`` on the tiny Fashion-MNIST, plus real subprocesses.

Budgets are tiny (width 16, 2 images per class, a few iterations, 1 model x 1 epoch) so the file runs in well
under a minute on two CPU cores.
"""
import contextlib
import io
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from atom_plugin import CondensedDataset, __version__
from atom_plugin._safeio import read_tensors
from atom_plugin.cli import main
from atom_plugin.config import PRESETS
from atom_plugin.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from atom_plugin.matcher import Matcher
from atom_plugin.results import read_records

ACCURACY_FIELDS = {"dataset", "method", "ipc", "model", "accuracy_mean", "accuracy_std", "num_models", "eval_epochs",
                   "iterations", "device", "torch", "date", "command"}
EVAL = ["--evaluate", "--eval-epochs", "1", "--eval-models", "1"]


def tiny(root, *extra) -> list[str]:
    """A tiny condensation of the tiny Fashion-MNIST (any later flag overrides an earlier one)."""
    return ["condense", "--dataset", "fashion-mnist", "--data-root", str(root), "--width", "16", "--batch-real", "4",
            "--ipc", "2", "--device", "cpu", "--quiet", *map(str, extra)]


def run(argv) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured (usable in module-scoped fixtures, unlike capsys)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2, (out, err)
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These runs are tiny: extra threads only add overhead (and contend with anything else on a shared box).
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def straight(tiny_fmnist_root, tmp_path_factory):
    """An uninterrupted 4-iteration run with evaluation and the progress bar on: ``(dir, stdout, stderr)``."""
    out = tmp_path_factory.mktemp("cli") / "straight"
    argv = [a for a in tiny(tiny_fmnist_root, "--iterations", 4, *EVAL, "--out", out) if a != "--quiet"]
    code, stdout, stderr = run(argv)
    assert code == 0, stderr
    return out, stdout, stderr


# -- condense ---------------------------------------------------------------------------------------------------

def test_condense_writes_files_records_and_summary(straight):
    out, stdout, stderr = straight
    assert {p.name for p in out.iterdir()} >= {"condensed.safetensors", "checkpoint.safetensors", "grid.png",
                                               "result.json"}
    cond = CondensedDataset.load(out / "condensed.safetensors")
    # the atom preset at IPC 2: factor 2 (20 stored images, 80 decoded samples), random networks
    assert tuple(cond.stored_images.shape) == (20, 1, 28, 28) and tuple(cond.images.shape) == (80, 1, 28, 28)
    assert (cond.ipc, cond.factor, cond.method, cond.config["networks"]) == (2, 2, "atom", "random")
    assert cond.provenance["dataset"] == "fashion-mnist" and cond.provenance["val_split"] is None
    assert (out / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    condense_rec, acc = read_records(out / "result.json")
    assert condense_rec["record"] == "condense" and condense_rec["iterations"] == 4
    assert condense_rec["final_loss"] > 0 and condense_rec["seconds"] >= 0
    assert condense_rec["config"]["width"] == 16
    assert condense_rec["config"]["w_channel"] == PRESETS["atom"]["w_channel"] > 0  # the preset's value, saved
    assert ACCURACY_FIELDS <= acc.keys(), ACCURACY_FIELDS - acc.keys()
    assert acc["record"] == "accuracy" and acc["split"] == "test"
    assert (acc["method"], acc["ipc"], acc["model"], acc["num_models"], acc["eval_epochs"], acc["iterations"],
            acc["device"]) == ("atom", 2, "convnet", 1, 1, 4, "cpu")
    assert (acc["factor"], acc["networks"]) == (2, "random")
    assert 0 <= acc["accuracy_mean"] <= 100 and acc["command"].startswith("atom condense --dataset fashion-mnist")

    assert re.fullmatch(rf"condensed fashion-mnist: 10 classes x 2 IPC \(factor 2: 8 decoded per class\) in \d+ s -> {re.escape(str(out))}/condensed"
                        r"\.safetensors", stdout.splitlines()[0]), stdout
    assert f"accuracy (test, 1 x convnet, 1 epoch): {acc['accuracy_mean']:.2f} ± 0.00 %" in stdout
    assert "condense fashion-mnist" in stderr and "loss=" in stderr and "evaluate convnet" in stderr  # progress bars


def test_resume_continues_to_the_same_images(straight, tiny_fmnist_root, tmp_path):
    out = tmp_path / "resumed"
    assert run(tiny(tiny_fmnist_root, "--iterations", 2, "--out", out))[0] == 0
    code, stdout, stderr = run(tiny(tiny_fmnist_root, "--iterations", 4, "--resume", "--out", out))
    assert code == 0, stderr
    resumed = CondensedDataset.load(out)
    assert torch.equal(resumed.images, CondensedDataset.load(straight[0]).images)  # bit-exact on CPU
    assert resumed.provenance["resumed_from"] == 2
    assert [r["resumed_from"] for r in read_records(out / "result.json")] == [None, 2]


def test_ctrl_c_keeps_the_checkpoint_and_says_how_to_continue(straight, tiny_fmnist_root, tmp_path, monkeypatch):
    out = tmp_path / "interrupted"
    step = Matcher.step

    def interrupted_step(self, t):
        if t == 3:
            raise KeyboardInterrupt
        return step(self, t)

    monkeypatch.setattr(Matcher, "step", interrupted_step)
    argv = tiny(tiny_fmnist_root, "--iterations", 4, "--checkpoint-every", 1, "--out", out)
    code, _, err = run(argv)
    assert code == 130
    assert "interrupted at iteration 3 (checkpoint at iteration 3" in err
    assert err.strip().endswith("continue with: atom " + " ".join(argv) + " --resume")
    _, meta = read_tensors(out / "checkpoint.safetensors", kind=CHECKPOINT_FORMAT, max_version=CHECKPOINT_VERSION)
    assert meta["iteration"] == 3 and not (out / "condensed.safetensors").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary files left

    monkeypatch.undo()
    assert run(argv + ["--resume"])[0] == 0
    assert torch.equal(CondensedDataset.load(out).images, CondensedDataset.load(straight[0]).images)


def test_validation_split_round_trip(tiny_fmnist_root, tmp_path):
    out = tmp_path / "val"
    code, stdout, err = run(tiny(tiny_fmnist_root, "--iterations", 1, "--val-split", 50, *EVAL, "--out", out))
    assert code == 0, err
    cond_rec, acc = read_records(out / "result.json")
    assert cond_rec["train_size"] == 150 and acc["split"] == "validation" and acc["val_split"] == 50
    assert "accuracy (validation, 1 x convnet, 1 epoch)" in stdout
    # `atom evaluate` rebuilds the same held-out images from the file's provenance: same accuracy.
    code, _, err = run(["evaluate", out, "--split", "validation", "--epochs", 1, "--num-models", 1, "--device", "cpu",
                        "--quiet"])
    assert code == 0, err
    again = read_records(out / "result.json")[-1]
    assert again["split"] == "validation" and again["accuracy_mean"] == acc["accuracy_mean"]


# -- evaluate, show, baseline, report --------------------------------------------------------------------------

def test_evaluate_reproduces_the_in_run_evaluation(straight, tmp_path):
    out = tmp_path / "eval.json"
    code, stdout, err = run(["evaluate", straight[0], "--epochs", 1, "--num-models", 1, "--device", "cpu", "--quiet",
                             "--out", out])
    assert code == 0, err
    (rec,) = read_records(out)
    assert ACCURACY_FIELDS <= rec.keys() and rec["iterations"] == 4 and rec["split"] == "test"
    assert rec["accuracy_mean"] == read_records(straight[0] / "result.json")[1]["accuracy_mean"]
    assert "accuracy (test, 1 x convnet, 1 epoch)" in stdout


def test_show_writes_a_grid(straight, tmp_path):
    from PIL import Image

    png = tmp_path / "g.png"
    code, stdout, _ = run(["show", straight[0] / "condensed.safetensors", "--out", png, "--max-per-class", 1])
    assert code == 0 and str(png) in stdout
    w, h = Image.open(png).size
    assert h == 2 + 10 * (2 * 28 + 2)  # one row per class (10) of stored 28 x 28 images at scale 2
    assert "factor 2: 8 decoded per class" in stdout
    code, _, _ = run(["show", straight[0], "--out", tmp_path / "d.png", "--decoded"])
    wd, hd = Image.open(tmp_path / "d.png").size
    assert code == 0 and hd == h and wd - w == 7 * (2 * 28 + 2)  # 8 decoded samples a row instead of 1 stored


def test_baselines_and_report(straight, tiny_fmnist_root, tmp_path, capsys):
    rand, herd = tmp_path / "random", tmp_path / "herding"
    common = ["--dataset", "fashion-mnist", "--data-root", tiny_fmnist_root, "--ipc", 2, "--device", "cpu", "--quiet"]
    assert main([str(a) for a in ["baseline", "--method", "random", *common, *EVAL, "--out", rand]]) == 0
    assert main([str(a) for a in ["baseline", "--method", "herding", *common, "--out", herd]]) == 0
    assert "selected fashion-mnist: 10 classes x 2 IPC (random real images)" in capsys.readouterr().out
    base_rec, acc = read_records(rand / "result.json")
    assert base_rec["record"] == "baseline" and ACCURACY_FIELDS <= acc.keys()
    assert (acc["method"], acc["iterations"], acc["ipc"]) == ("random", 0, 2)
    assert CondensedDataset.load(herd).method == "herding" and (herd / "grid.png").exists()

    assert main(["report", str(straight[0]), str(rand)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["dataset", "split", "method", "ipc", "model"]
    assert [line.split()[2] for line in table[2:]] == ["atom", "random"]
    assert main(["report", str(tmp_path), "--markdown"]) == 0  # finds result.json files recursively
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| dataset |") and len(md) == 3  # header, rule, the random record


# -- bad input: exit 2, one line, no traceback -----------------------------------------------------------------

@pytest.mark.parametrize("extra, needles", [
    (["--dataset", "no-such-set"], ["unknown dataset 'no-such-set'", "fashion-mnist"]),
    (["--model", "no-such-net"], ["unknown model 'no-such-net'", "convnet"]),
    (["--preset", "no-such-preset"], ["unknown preset 'no-such-preset'", "datadam"]),
    (["--ipc", "0"], ["ipc must be", "got 0"]),
    (["--ipc", "21"], ["ipc 21 is larger than class", "only 20 images"]),
    (["--layers", "7"], ["layers [7] do not exist"]),
    (["--iterations", "x"], ["argument --iterations", "atom condense --help"]),
    (["--evaluate", "--eval-epochs", "0"], ["--eval-epochs must be >= 1"]),
    (["--factor", "0"], ["factor must be a whole number >= 1", "got 0"]),
    (["--networks", "trained"], ["argument --networks", "invalid choice"]),
    (["--factor", "28"], ["--factor 28 gives 1x1-pixel tiles on 28x28 images", "use --factor <= 7"]),
    (["--factor", "14"], ["--factor 14 gives 2x2-pixel tiles"]),
    (["--lr-images", "nan"], ["--lr-images must be a finite number, got nan"]),
    (["--momentum", "inf"], ["--momentum must be a finite number, got inf"]),
    (["--w-spatial", "nan"], ["--w-spatial must be a finite number"]),
], ids=["dataset", "model", "preset", "ipc0", "ipc-too-large", "layers", "usage", "eval-epochs", "factor0", "networks",
        "factor28", "factor14", "lr-nan", "momentum-inf", "w-spatial-nan"])
def test_bad_condense_settings(tiny_fmnist_root, tmp_path, extra, needles):
    out = tmp_path / "run"
    assert_one_line_error(*run(tiny(tiny_fmnist_root, "--iterations", 1, *extra, "--out", out)), *needles)
    assert not out.exists()  # validated before anything was written


def test_factor_that_does_not_divide_the_image_size(tiny_fmnist_root, tmp_path):
    code, out, err = run(tiny(tiny_fmnist_root, "--iterations", 1, "--factor", 3, "--out", tmp_path / "run"))
    assert_one_line_error(code, out, err, "factor 3 does not divide the image size 28x28")
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


def test_images_that_overflow_are_refused_not_saved(tiny_fmnist_root, tmp_path):
    """A finite but huge image learning rate overflows the pixels in one step while that step's loss is finite:
    one line, exit 2, and no condensed set or checkpoint of Inf images on disk."""
    out = tmp_path / "run"
    code, stdout, err = run(tiny(tiny_fmnist_root, "--iterations", 1, "--lr-images", "3e38", "--w-embed", "1e6",
                                 "--out", out))
    assert_one_line_error(code, stdout, err, "synthetic images became NaN/Inf after 1 iteration", "--lr-images")
    assert not (out / "condensed.safetensors").exists() and not (out / "checkpoint.safetensors").exists()


def test_factor_4_on_28_pixels_stays_legal(tiny_fmnist_root, tmp_path):
    code, stdout, err = run(tiny(tiny_fmnist_root, "--iterations", 1, "--ipc", 1, "--factor", 4, "--out", tmp_path))
    assert code == 0, err
    assert CondensedDataset.load(tmp_path / "condensed.safetensors").factor == 4


def test_missing_data_root_names_where_it_looked(tmp_path):
    missing = tmp_path / "no" / "data"
    argv = ["condense", "--dataset", "fashion-mnist", "--data-root", missing, "--out", tmp_path / "run"]
    assert_one_line_error(*run(argv), str(missing), "does not exist")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(tiny_fmnist_root, tmp_path):
    argv = tiny(tiny_fmnist_root, "--device", "cuda", "--out", tmp_path / "run")
    assert_one_line_error(*run(argv), "'cuda'", "no usable CUDA")


def test_unwritable_out(tiny_fmnist_root, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    assert_one_line_error(*run(tiny(tiny_fmnist_root, "--out", tmp_path / "file" / "run")), "cannot create --out",
                          "is a file")
    assert_one_line_error(*run(tiny(tiny_fmnist_root, "--out", tmp_path / "file")), "is a file, not a directory")


def test_existing_checkpoint_needs_resume(straight, tiny_fmnist_root):
    assert_one_line_error(*run(tiny(tiny_fmnist_root, "--iterations", 4, "--out", straight[0])),
                          "a checkpoint already exists", "--resume")


def test_bad_condensed_files(straight, tmp_path):
    good = (straight[0] / "condensed.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    save_file({"x": torch.zeros(3)}, str(tmp_path / "foreign.safetensors"))
    for cmd in ("evaluate", "show"):
        assert_one_line_error(*run([cmd, tmp_path / "truncated.safetensors"]), "truncated or corrupt")
        assert_one_line_error(*run([cmd, tmp_path / "foreign.safetensors"]), "not written by atom-plugin")
    assert_one_line_error(*run(["evaluate", straight[0] / "checkpoint.safetensors"]), "checkpoint")
    assert_one_line_error(*run(["evaluate", tmp_path / "nothing-here"]), "no file at")
    assert_one_line_error(*run(["evaluate", straight[0], "--split", "validation"]), "no validation split")
    assert_one_line_error(*run(["report", tmp_path / "nothing-here"]), "does not exist")


# -- the real entry points ---------------------------------------------------------------------------------------

def test_version_and_help(capsys):
    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"atom {__version__}"
    assert main([]) == 2


def test_python_dash_m_subprocess(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path))
    help_ = subprocess.run([sys.executable, "-m", "atom_plugin", "--help"], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=120)
    assert help_.returncode == 0
    for command in ("condense", "evaluate", "baseline", "show", "report"):
        assert command in help_.stdout
    bad = subprocess.run([sys.executable, "-m", "atom_plugin", "condense", "--dataset", "no-such-set", "--out",
                          str(tmp_path / "run")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert_one_line_error(bad.returncode, bad.stdout, bad.stderr, "unknown dataset")


@pytest.mark.slow
def test_torchrun_class_parallel(straight, tiny_fmnist_root, tmp_path):
    """The README's `torchrun -m atom_plugin condense`: 2 gloo ranks, rank 0 writes; same images as 1 process."""
    out = tmp_path / "parallel"
    argv = tiny(tiny_fmnist_root, "--iterations", 4, "--out", out)
    env = dict(os.environ, HOME=str(tmp_path), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "atom_plugin", *argv], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("condensed fashion-mnist: 10 classes x 2 IPC") == 1  # rank 0 only
    par = CondensedDataset.load(out)
    assert par.provenance["class_parallel"]["world_size"] == 2
    assert (par.images - CondensedDataset.load(straight[0]).images).abs().max() <= 1e-5
    (rec,) = read_records(out / "result.json")
    assert rec["world_size"] == 2


def test_every_config_field_has_a_flag_with_the_dataclass_default():
    """Flags are generated from ATOMConfig: one per field (no API-only fields today), same default."""
    import dataclasses

    from atom_plugin.cli import build_parser
    from atom_plugin.cli._common import config_from_args
    from atom_plugin.config import ATOMConfig

    args = build_parser().parse_args(["condense", "--dataset", "digits", "--out", "x"])
    assert config_from_args(args) == ATOMConfig()
    args = build_parser().parse_args(["condense", "--dataset", "digits", "--out", "x", "--lr-images", "0.5",
                                      "--momentum", "0.9", "--no-dsa", "--zca", "--layers", "1", "--pool-cap", "7"])
    cfg = config_from_args(args)
    assert (cfg.lr_images, cfg.momentum, cfg.dsa, cfg.zca, cfg.layers, cfg.pool_cap) == (0.5, 0.9, False, True,
                                                                                          (1,), 7)
    assert {f.name for f in dataclasses.fields(ATOMConfig)} <= set(vars(args))


def test_condense_without_config_flags_records_the_api_default(tiny_fmnist_root, tmp_path):
    """`atom condense` with only data/run flags records the config that condense(data, ATOMConfig(...)) saves."""
    from atom_plugin import ATOMConfig, condense, load_dataset

    out = tmp_path / "run"
    argv = ["condense", "--dataset", "fashion-mnist", "--data-root", tiny_fmnist_root, "--ipc", 1, "--iterations", 1,
            "--device", "cpu", "--quiet", "--out", out]
    assert run(argv)[0] == 0
    recorded = read_records(out / "result.json")[0]["config"]
    train = load_dataset("fashion-mnist", tiny_fmnist_root, split="train")
    api = condense(train, ATOMConfig(ipc=1, iterations=1), device="cpu", seed=0)
    assert recorded == api.config


def test_core_messages_name_parameters_and_the_cli_names_flags(tiny_fmnist_root, tmp_path):
    """The core says `ipc` / `resume=True` (Python); the CLI turns them into --ipc / --resume."""
    from atom_plugin import ATOMConfig, condense, load_dataset
    from atom_plugin.cli import flag_message
    from atom_plugin.errors import ConfigError

    train = load_dataset("fashion-mnist", tiny_fmnist_root, split="train")
    with pytest.raises(ConfigError, match="use `ipc` <= "):
        condense(train, ATOMConfig(ipc=10**6, iterations=1), device="cpu")
    code, _, err = run(tiny(tiny_fmnist_root, "--ipc", 10**6, "--iterations", 1, "--out", tmp_path / "r"))
    assert code == 2 and "use --ipc <= " in err and "`" not in err
    import argparse

    flags = {"resume": argparse._StoreTrueAction(["--resume"], "resume"),
             "download": argparse._StoreFalseAction(["--no-download"], "download"),
             "device": argparse.Action(["--device"], "device"), "out": argparse.Action(["--out"], "out")}
    assert flag_message("pass `resume=True`, `device='cpu'`, another `checkpoint` or `zca`; allow `download=True`",
                        flags) == "pass --resume, --device cpu, another --out or `zca`; allow leave out --no-download"


def test_ctrl_c_during_evaluation_says_the_set_is_saved(tiny_fmnist_root, tmp_path, monkeypatch):
    import atom_plugin.cli.condense as cli_condense

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_condense, "_evaluate", interrupted)
    out = tmp_path / "eval-interrupted"
    code, _, err = run(tiny(tiny_fmnist_root, "--iterations", 1, *EVAL, "--out", out))
    assert code == 130 and (out / "condensed.safetensors").exists()
    assert err == (f"\ninterrupted during evaluation; {out / 'condensed.safetensors'} is saved; evaluate it with: "
                   f"atom evaluate {out} --split test --model convnet --num-models 1 --epochs 1 --device cpu "
                   "--seed 0\n")


def test_an_error_in_the_loop_closes_the_bar_before_the_one_line_message(tiny_fmnist_root, tmp_path, monkeypatch):
    monkeypatch.setattr(Matcher, "step", lambda self, t: torch.tensor(float("nan")))
    argv = [a for a in tiny(tiny_fmnist_root, "--iterations", 2, "--out", tmp_path / "nan") if a != "--quiet"]
    code, _, err = run(argv)
    bar, message, end = err.split("\n")  # the bar's line (with its \r redraws), ended when it closed; the error
    assert code == 2 and "condense fashion-mnist" in bar and "error" not in bar and end == ""
    assert message.startswith("error: the matching loss became NaN/Inf at iteration 0")
