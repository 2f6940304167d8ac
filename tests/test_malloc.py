"""keep_freed_memory: glibc stops unmapping freed blocks, so re-allocating a large tensor faults no page in again.

Each case runs in a fresh interpreter: the setting is process-wide and cannot be undone.
"""
import json
import subprocess
import sys
import textwrap

import pytest

GLIBC = sys.platform.startswith("linux") and bool(__import__("platform").libc_ver()[0] == "glibc")

# Allocates, fills and frees a 128 MB float32 tensor 10 times (above glibc's largest mmap threshold, 32 MiB) and
# prints the minor page faults that took, whether keep_freed_memory() took effect and what the records will say.
PROBE = textwrap.dedent("""
    import json, os, resource, sys
    import torch
    import atom_plugin
    from atom_plugin.results import environment
    applied = atom_plugin.keep_freed_memory() if sys.argv[1] == "keep" else None
    torch.empty(32 * 2**20).fill_(1.0)  # the first one may fault in either way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        torch.empty(32 * 2**20).fill_(1.0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(json.dumps(dict(applied=applied, faults=faults, freed_memory=environment("cpu")["freed_memory"])))
""")


def _probe(mode: str, env: dict | None = None) -> dict:
    import os

    run_env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"} | (env or {})
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=run_env,
                         timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_kept_freed_memory_stops_the_page_faults_of_large_tensors():
    default, kept = _probe("default"), _probe("keep")
    # 10 x 128 MB = 327,680 pages of 4 KiB when each block is mmapped anew; at most one block's (32,768 seen on
    # glibc 2.36) once the heap keeps them
    assert default["faults"] > 300_000, default
    assert kept["applied"] is True and kept["faults"] < 66_000, (kept, default)
    assert (default["freed_memory"], kept["freed_memory"]) == ("default", "kept")


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_the_tunables_spelling_has_the_same_effect_and_is_recorded():
    from atom_plugin._malloc import TUNABLES

    tuned = _probe("default", env={"GLIBC_TUNABLES": TUNABLES})
    assert tuned["freed_memory"] == "kept" and tuned["faults"] < 66_000, tuned


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_the_opt_out_changes_nothing():
    out = _probe("keep", env={"ATOM_KEEP_FREED_MEMORY": "0"})
    assert out["applied"] is False and out["freed_memory"] == "default" and out["faults"] > 300_000, out


@pytest.mark.parametrize("opt_out", [None, "0"])
def test_scripts_keep_freed_memory(tmp_path, opt_out):
    import os

    script = tmp_path / "script.py"
    script.write_text("from atom_plugin.runner import run_script\nfrom atom_plugin._malloc import freed_memory_kept\n"
                      "run_script(lambda: print(freed_memory_kept()))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "ATOM_KEEP_FREED_MEMORY")}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env=env | ({"ATOM_KEEP_FREED_MEMORY": opt_out} if opt_out else {}))
    assert out.returncode == 0 and out.stdout.strip() == str(GLIBC and opt_out is None), out
