"""The quality levers for short budgets: representative real batches (DREAM) and the herding start."""
import pytest
import torch

from atom_plugin import ATOMConfig, condense, herding_subset, recondense
from atom_plugin._safeio import read_tensors, write_tensors
from atom_plugin.errors import CondensedFileError, ConfigError
from atom_plugin.matcher import Matcher
from atom_plugin.representative import STATE_KEY, kmeans, nearest_to_centres
from test_multiformation import _StopAt  # the interrupting callback of the resume tests

SMALL = dict(width=16, batch_real=8, factor=1, networks="random")
REP = dict(SMALL, real_batch="representative", representative_pool=32, recluster_every=4)
CPU = torch.device("cpu")


def _matcher(data, cfg, local=None, run=tuple(range(10))):
    cfg = cfg.resolved(dsa_strategy_default=data.dsa_strategy)
    return Matcher(data, cfg, list(run), list(local or run), CPU, 0, None)


def test_kmeans_batch_is_the_samples_nearest_the_centres_by_hand():
    # Two blobs on a line: {0, 1, 2.5} (mean 1.1667) and {10, 11, 12.5} (mean 11.1667); k-means++ starts from row
    # floor(0.1 * 6) = 0 and, the blob at 0 having no weight left near it, a row of the other blob.
    x = torch.tensor([[0.0], [1.0], [2.5], [10.0], [11.0], [12.5]])
    centres, assign = kmeans(x, 2, torch.tensor([0.1, 0.5]))
    assert assign.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.allclose(centres.flatten(), torch.tensor([3.5 / 3, 33.5 / 3], dtype=torch.float64))
    assert nearest_to_centres(x, centres, assign).tolist() == [1, 4]  # 1 and 11: the samples nearest the centres
    # k = n: every sample is its own cluster, all taken once
    c, a = kmeans(x, 6, torch.rand(6, generator=torch.Generator().manual_seed(0)))
    assert sorted(nearest_to_centres(x, c, a).tolist()) == list(range(6))
    with pytest.raises(ValueError, match="1 <= k <= n"):
        kmeans(x, 7, torch.rand(7))


def test_herding_init_at_factor_1_starts_from_exactly_the_herding_subset(digits):
    cfg = ATOMConfig(preset="dm", ipc=2, iterations=0, init="herding", **SMALL)
    out = condense(digits, cfg, device="cpu", seed=3, classes=[1, 4, 7])
    coreset = herding_subset(digits, 2, seed=3, classes=[1, 4, 7], feature_config=cfg.resolved(), device="cpu")
    assert torch.equal(out.images, coreset.images) and torch.equal(out.labels, coreset.labels)
    assert out.provenance["init"]["method"] == "herding" and out.provenance["init"]["seconds"] > 0
    assert "trained 1 epoch" in out.provenance["init"]["feature_network"]
    plain = condense(digits, cfg.replace(init="real"), device="cpu", seed=3, classes=[1, 4, 7])
    assert not torch.equal(plain.images, out.images) and "init" not in plain.provenance


def test_herding_init_at_factor_2_tiles_the_herding_subset_of_ipc_times_4_images(digits):
    """At factor f the start is the herding subset of ipc * f² images per class, each f² of them encoded (tiled) into
    one stored image; the set lists its classes in label order (ablation round 9's ``s10c10-p4-f2-herd``)."""
    from atom_plugin.multiformation import encode
    cfg = ATOMConfig(preset="dm", ipc=1, iterations=0, init="herding", **dict(SMALL, factor=2))
    out = condense(digits, cfg, device="cpu", seed=3, classes=[4, 1])
    coreset = herding_subset(digits, 4, seed=3, classes=[4, 1], feature_config=cfg.resolved(), device="cpu")
    order = torch.cat([(coreset.labels == k).nonzero().flatten() for k in (1, 4)])
    assert out.stored_images.shape[0] == 2 and torch.equal(out.stored_images, encode(coreset.images[order], 2))


def test_the_atom_default_starts_from_the_herding_coreset_above_ipc_10_only(digits):
    """The per-IPC table's start (ATOM_BY_IPC): herding at IPC 11 (factor 1 there: exactly the coreset's images),
    random real images at IPC 10; an explicit ``init`` wins."""
    cfg = ATOMConfig(preset="atom", ipc=11, iterations=0, **SMALL)
    assert cfg.init is None and cfg.resolved().init == "herding" and cfg.replace(ipc=10).resolved().init == "real"
    out = condense(digits, cfg, device="cpu", seed=1, classes=[2, 5])
    coreset = herding_subset(digits, 11, seed=1, classes=[2, 5], feature_config=cfg.resolved(), device="cpu")
    assert torch.equal(out.images, coreset.images) and out.provenance["init"]["method"] == "herding"
    assert out.config["init"] == "herding"  # the resolved start is what the file records
    assert "init" not in condense(digits, cfg.replace(init="real"), device="cpu", seed=1, classes=[2, 5]).provenance
    # re-condensed without a config to IPC 2, the set starts as the table does there, from its (random) samples
    smaller = recondense(out, 2, device="cpu", seed=1)
    assert smaller.config["init"] == "real" and "init" not in smaller.provenance


def test_a_resumed_herding_start_keeps_its_cost_in_the_provenance(digits, tmp_path):
    cfg = ATOMConfig(preset="dm", ipc=1, iterations=2, init="herding", **SMALL)
    ckpt = tmp_path / "c.safetensors"
    first = condense(digits, cfg, device="cpu", seed=0, classes=[0, 1], checkpoint=ckpt)
    resumed = condense(digits, cfg.replace(iterations=3), device="cpu", seed=0, classes=[0, 1], checkpoint=ckpt,
                       resume=True)  # the herding selection is not redone (the checkpoint holds the images)
    assert resumed.provenance["resumed_from"] == 2 and resumed.provenance["init"] == first.provenance["init"]
    # the resumed process's own checkpoints keep the record, so a second resume still reports it
    again = condense(digits, cfg.replace(iterations=4), device="cpu", seed=0, classes=[0, 1], checkpoint=ckpt,
                     resume=True)
    assert again.provenance["resumed_from"] == 3 and again.provenance["init"] == first.provenance["init"]


def test_representative_batch_is_the_pool_samples_nearest_the_centres_of_the_iterations_network(digits):
    m = _matcher(digits, ATOMConfig(preset="dm", ipc=1, iterations=9, dsa=False, **REP), run=(2, 5))
    seen = []
    stats = m.real_stats
    m.real_stats = lambda real: (seen.append(real.clone()), stats(real))[1]
    m.step(0)
    # recompute from scratch with the network iteration 0 matched with (random networks: never trained)
    sel = m.real.representative
    pool, seeds = sel.draws(0)
    expect = []
    for i, k in enumerate((2, 5)):
        members = (digits.labels == k).nonzero().flatten()  # the pool is sorted by class, stable
        images = digits.images[members[pool[i]]]
        feats = m.net.embed(images).flatten(1)
        centres, assign = kmeans(feats, 8, seeds[i])
        expect.append(images[nearest_to_centres(feats, centres, assign)])
    assert torch.equal(seen[0], torch.cat(expect))
    for t in range(1, 5):
        m.step(t)
    assert all(torch.equal(s, seen[0]) for s in seen[1:4])  # the same samples until the next re-clustering
    assert not torch.equal(seen[4], seen[0]) and sel.clustered_at == 4


def test_representative_runs_differ_from_uniform_ones_and_reference_mode_refuses_them(digits):
    cfg = ATOMConfig(preset="dm", ipc=1, iterations=2, **SMALL)
    uniform = condense(digits, cfg, device="cpu", seed=0, classes=[0, 1])
    rep = condense(digits, cfg.replace(**REP), device="cpu", seed=0, classes=[0, 1])
    assert rep.config["real_batch"] == "representative" and not torch.equal(rep.images, uniform.images)
    with pytest.raises(ConfigError, match="real_batch=.uniform."):
        condense(digits, cfg.replace(**REP), device="cpu", mode="reference", classes=[0])


@pytest.mark.parametrize("networks", ["random", "pool"])
def test_resume_is_bit_exact_with_representative_batches(digits, tmp_path, networks):
    # interrupted at 3, between re-clusterings (0, 4): the checkpoint carries the selection
    cfg = ATOMConfig(preset="atom", ipc=1, iterations=6, **dict(REP, networks=networks, pool_size=2, pool_batch=32))
    ckpt = tmp_path / "c.safetensors"

    def run(**kw):
        return condense(digits, cfg, device="cpu", seed=2, classes=[0, 1, 2], checkpoint_every=3, **kw)

    full = run()
    with pytest.raises(KeyboardInterrupt):
        run(checkpoint=ckpt, callbacks=[_StopAt(3)])
    assert read_tensors(ckpt, kind="atom-plugin/checkpoint", max_version=2)[0][STATE_KEY].shape == (3, 8)
    assert torch.equal(run(checkpoint=ckpt, resume=True).stored_images, full.stored_images)


def test_class_parallel_equals_one_process_with_representative_batches(digits):
    cfg = ATOMConfig(preset="atom", ipc=1, iterations=1, factor=2, **{k: v for k, v in REP.items() if k != "factor"})
    whole, part = _matcher(digits, cfg), _matcher(digits, cfg, local=[3, 8])
    for t in range(5):  # re-clusters at 0 and 4
        whole.step(t)
        part.step(t)
    assert torch.equal(part.real.representative.positions, whole.real.representative.positions[[3, 8]])
    assert torch.allclose(part.syn, whole.syn[[3, 8]], atol=1e-5)


def test_a_checkpoint_written_before_the_levers_resumes_as_uniform_batches_from_real_images(digits, tmp_path):
    cfg = ATOMConfig(preset="dm", ipc=1, iterations=2, **SMALL)
    ckpt = tmp_path / "c.safetensors"
    condense(digits, cfg, device="cpu", seed=0, classes=[0, 1], checkpoint=ckpt)
    tensors, meta = read_tensors(ckpt, kind="atom-plugin/checkpoint", max_version=2)
    for name in ("real_batch", "representative_pool", "recluster_every"):
        del meta["config"][name]
    write_tensors(ckpt, tensors, meta, kind="atom-plugin/checkpoint", version=meta["format_version"])
    out = condense(digits, cfg.replace(iterations=3), device="cpu", seed=0, classes=[0, 1], checkpoint=ckpt,
                   resume=True)
    assert out.provenance["resumed_from"] == 2
    with pytest.raises(CondensedFileError, match="config.real_batch"):
        condense(digits, cfg.replace(iterations=4, **REP), device="cpu", seed=0, classes=[0, 1], checkpoint=ckpt,
                 resume=True)
