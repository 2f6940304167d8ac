"""Multi-formation (factorised) images and the network pool: layout, files, the loop, resume, splits."""
import pytest
import torch

from atom_plugin import ATOMConfig, CondenseCallback, CondensedDataset, condense, random_subset, recondense
from atom_plugin._safeio import read_tensors, write_tensors
from atom_plugin.matcher import Matcher
from atom_plugin.condensed import FORMAT
from atom_plugin.config import preset_defaults
from atom_plugin.errors import ConfigError
from atom_plugin.multiformation import check_factor, decode, encode

SMALL = dict(width=16, batch_real=8, pool_size=3, pool_batch=32)


def tile_constant(n=2, c=1, f=2, side=8):
    """Stored images whose tile j of image i is the constant 10*i + j (row-major tiles)."""
    vals = torch.arange(n * f * f, dtype=torch.float32).view(n, f, f) + 6 * torch.arange(n).view(n, 1, 1)
    img = vals.repeat_interleave(side // f, 1).repeat_interleave(side // f, 2)
    return img[:, None].expand(n, c, side, side).contiguous(), vals


def test_decode_cuts_row_major_tiles_and_resizes_them():
    stored, vals = tile_constant(n=2, c=3)
    out = decode(stored, 2)
    assert out.shape == (8, 3, 8, 8) and out.dtype == torch.float32
    # decoded sample 4*i + j is tile j of stored image i (top-left, top-right, bottom-left, bottom-right)
    assert torch.equal(out.flatten(1).amin(1), vals.flatten().float())
    assert torch.equal(out.flatten(1).amax(1), vals.flatten().float())
    assert decode(stored, 1) is stored
    assert torch.allclose(decode(encode(out, 2), 2), out, atol=1e-6)  # constant tiles survive the round trip


def test_encode_places_downsampled_images_in_tiles():
    imgs = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 1, 6, 6)
    stored = encode(imgs, 2)
    assert stored.shape == (2, 1, 6, 6)
    assert stored[1, 0, 0, 0] == 4 and stored[1, 0, 0, 5] == 5 and stored[1, 0, 5, 0] == 6 and stored[1, 0, 5, 5] == 7


@pytest.mark.parametrize("factor, needle", [(0, "whole number >= 1"), (3, "does not divide the image size 28x28"),
                                            (2.0, "whole number")])
def test_bad_factor_is_one_line(factor, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        check_factor(factor, (28, 28))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="factor"):
        ATOMConfig(factor=factor).resolved() if factor != 3 else CondensedDataset(
            torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]), ["a", "b"], [0.5], [0.5], factor=3)


def test_preset_per_ipc_table():
    assert preset_defaults("dm", 1) == (1, "random", 1.0, "real") == preset_defaults("datadam", 50)
    assert preset_defaults("atom", 1) == (2, "random", 0.3, "real") and preset_defaults("atom", 2) == (2, "random", 1.0, "real")
    assert preset_defaults("atom", 10) == (2, "random", 1.0, "real")
    assert preset_defaults("atom", 11) == preset_defaults("atom", 50) == (1, "random", 1.0, "herding")
    for ipc in (1, 10, 50):
        cfg = ATOMConfig(preset="atom", ipc=ipc).resolved()
        assert (cfg.factor, cfg.networks, cfg.lr_images, cfg.init) == preset_defaults("atom", ipc)
    explicit = ATOMConfig(preset="atom", ipc=50, factor=2, networks="random", lr_images=0.3, init="real").resolved()
    assert (explicit.factor, explicit.lr_images, explicit.init) == (2, 0.3, "real")  # explicit values win
    with pytest.raises(ConfigError, match="init is unset"):
        ATOMConfig(lr_images=1.0, factor=1, networks="random", w_spatial=0, w_channel=0, w_embed=1, power=1).validate()


def test_factor_one_equals_the_unfactorised_loop(digits):
    """Golden sums of a 5-iteration run written by the code before factors existed (commit 502925b)."""
    golden = {"atom": (-565.4558414353523, 18572.339636451332), "dm": (-546.8327560785692, 18400.46196863684)}
    for preset, (total, absolute) in golden.items():
        cfg = ATOMConfig(preset=preset, ipc=2, iterations=5, width=16, batch_real=16, factor=1, networks="random")
        x = condense(digits, cfg, device="cpu", seed=3).images.double()
        assert float(x.sum()) == pytest.approx(total, rel=1e-6) and float(x.abs().sum()) == pytest.approx(absolute, rel=1e-6)


def test_factorised_condensation_stores_ipc_and_decodes_f2(digits):
    cfg = ATOMConfig(preset="dm", ipc=2, iterations=0, factor=2, **SMALL)
    start = condense(digits, cfg, device="cpu", seed=1, classes=[3, 5])
    assert start.stored_images.shape == (4, 1, 32, 32) and start.images.shape == (16, 1, 32, 32)
    assert (start.ipc, start.factor, start.decoded_per_class, len(start)) == (2, 2, 8, 16)
    assert start.labels.tolist() == [3] * 8 + [5] * 8 and start.stored_per_class() == {3: 2, 5: 2}
    # every tile starts as a different downsampled real image of its own class
    small = torch.nn.functional.interpolate(digits.images, size=(16, 16), mode="bilinear", antialias=True)
    tiles = start.stored_images.unfold(2, 16, 16).unfold(3, 16, 16).permute(0, 2, 3, 1, 4, 5).reshape(-1, 1, 16, 16)
    for j, tile in enumerate(tiles):
        hits = ((small - tile).abs().flatten(1).amax(1) < 1e-5).nonzero().flatten()
        assert len(hits) >= 1 and int(digits.labels[hits[0]]) == [3, 5][j // 8]
    assert len({t.flatten().numpy().tobytes() for t in tiles}) == 16
    out = condense(digits, cfg.replace(iterations=4), device="cpu", seed=1, classes=[3, 5])
    assert not torch.equal(out.stored_images, start.stored_images)


class _StopAt(CondenseCallback):
    def __init__(self, at):
        self.at = at

    def on_checkpoint(self, state, path):
        if state.iteration == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("networks", ["random", "pool"])
def test_resume_is_bit_exact_with_a_factor_and_the_pool(digits, tmp_path, networks):
    cfg = ATOMConfig(preset="atom", ipc=1, iterations=6, factor=2, networks=networks, pool_cap=2, **SMALL)
    full = condense(digits, cfg, device="cpu", seed=2, classes=[0, 1, 2])
    ckpt = tmp_path / "c.safetensors"
    with pytest.raises(KeyboardInterrupt):
        condense(digits, cfg, device="cpu", seed=2, classes=[0, 1, 2], checkpoint=ckpt, checkpoint_every=3,
                 callbacks=[_StopAt(3)])
    tensors, _ = read_tensors(ckpt, kind="atom-plugin/checkpoint", max_version=2)
    assert ("pool_weights" in tensors) == (networks == "pool")
    resumed = condense(digits, cfg, device="cpu", seed=2, classes=[0, 1, 2], checkpoint=ckpt, checkpoint_every=3,
                       resume=True)
    assert torch.equal(resumed.stored_images, full.stored_images)


def test_pool_networks_learn_and_are_redrawn_at_the_cap(digits):
    cfg = ATOMConfig(preset="dm", ipc=1, iterations=1, factor=1, networks="pool", pool_size=2, pool_cap=4,
                     pool_steps=2, **{k: v for k, v in SMALL.items() if k != "pool_size"})
    m = Matcher(digits, cfg.resolved(dsa_strategy_default=digits.dsa_strategy), list(range(10)), list(range(10)), torch.device("cpu"), 0, None)
    start = m.pool_nets.weights.clone()
    m.step(0)
    assert m.pool_nets.age.tolist() in ([2, 0], [0, 2]) and float(m.pool_nets.acc.max()) > 0
    trained = int(m.pool_nets.age.argmax())
    assert not torch.equal(m.pool_nets.weights[trained], start[trained])
    assert torch.equal(m.pool_nets.weights[1 - trained], start[1 - trained])
    for t in range(1, 12):
        m.step(t)
    assert int(m.pool_nets.age.max()) < 4  # a network at the cap was re-drawn (its steps start again from 0)


def test_matcher_split_independence_with_factor_and_pool(digits):
    cfg = ATOMConfig(preset="atom", ipc=1, iterations=1, factor=2, networks="pool", **SMALL)
    cfg = cfg.resolved(dsa_strategy_default=digits.dsa_strategy)
    run = list(range(10))
    whole = Matcher(digits, cfg, run, run, torch.device("cpu"), 0, None)
    part = Matcher(digits, cfg, run, [3, 8], torch.device("cpu"), 0, None)
    assert torch.equal(part.syn, whole.syn[[3, 8]])
    for t in range(3):
        whole.step(t)
        part.step(t)
    assert torch.allclose(part.syn, whole.syn[[3, 8]], atol=1e-5)
    assert torch.equal(part.pool_nets.weights, whole.pool_nets.weights)


def test_files_v2_round_trip_and_v1_loads_as_factor_1(digits, tmp_path):
    s = random_subset(digits, 2, seed=0, factor=2)
    assert s.method == "tiled-random" and s.stored_images.shape == (20, 1, 32, 32) and len(s) == 80
    back = CondensedDataset.load(s.save(tmp_path / "v2"))
    assert back.factor == 2 and torch.equal(back.stored_images, s.stored_images) and torch.equal(back.images, s.images)
    plain = random_subset(digits, 2, seed=0)
    write_tensors(tmp_path / "v1.safetensors", {"images": plain.images, "labels": plain.labels},
                  dict(name=plain.name, classes=plain.classes, mean=list(plain.mean), std=list(plain.std),
                       dsa_strategy=plain.dsa_strategy, method="atom", config={"preset": "atom", "ipc": 2},
                       provenance={}, zca_shape=None), kind=FORMAT, version=1)
    old = CondensedDataset.load(tmp_path / "v1.safetensors")
    assert old.factor == 1 and torch.equal(old.images, plain.images)
    assert old.config["factor"] == 1 and old.config["networks"] == "random"
    sub = back.subset([4, 7])
    assert sub.factor == 2 and sub.stored_per_class() == {4: 2, 7: 2} and len(sub) == 16


def test_recondense_into_another_factor(digits):
    cfg = ATOMConfig(preset="dm", ipc=4, iterations=2, factor=1, **SMALL)
    base = condense(digits, cfg, device="cpu", seed=0, classes=[1, 2])
    small = recondense(base, 2, cfg, factor=2, device="cpu", seed=0)  # IPC 4 at f = 1 -> IPC 2 at f = 2
    assert small.factor == 2 and small.stored_per_class() == {1: 2, 2: 2} and small.decoded_per_class == 8
    assert small.provenance["recondensed_from"] == dict(method="dm", ipc=4, factor=1, dataset="digits")
    same = recondense(small, 1, device="cpu", seed=0)  # no config: the set's own config and factor
    assert (same.factor, same.ipc) == (2, 1)
    with pytest.raises(ConfigError, match="stores only 2"):
        recondense(small, 3, cfg, device="cpu")


def test_grid_shows_stored_or_decoded_images_with_class_names(digits, tmp_path):
    from PIL import Image

    s = random_subset(digits, 1, seed=0, factor=2, classes=[0, 1])
    w1, h1 = Image.open(s.to_png_grid(tmp_path / "stored.png", scale=1)).size
    w4, h4 = Image.open(s.to_png_grid(tmp_path / "decoded.png", scale=1, decoded=True)).size
    assert h1 == h4 == 2 + 2 * (32 + 2)  # one row per class
    assert w4 - w1 == 3 * (32 + 2)  # four decoded samples per row instead of one stored image


@pytest.mark.parametrize("model", ["alexnet", "vgg11", "resnet18"])
def test_every_registered_network_matches_decoded_samples_from_the_pool(digits, model):
    cfg = ATOMConfig(preset="atom", ipc=1, iterations=2, factor=2, networks="pool", model=model, batch_real=4,
                     pool_size=2, pool_batch=8)
    out = condense(digits, cfg, device="cpu", seed=0, classes=[0, 1])
    assert out.images.shape == (8, 1, 32, 32) and torch.isfinite(out.images).all()


def test_zca_whitened_factorised_set(digits):
    cfg = ATOMConfig(preset="dm", ipc=1, iterations=2, factor=2, zca=True, **SMALL)
    out = condense(digits, cfg, device="cpu", seed=0, classes=[2, 6])
    assert out.zca is not None and out.factor == 2 and len(out) == 8
    pixels = out.denormalize(out.stored_images)  # the stored tiles back in pixel space
    assert pixels.shape == (2, 1, 32, 32) and 0 <= float(pixels.min()) <= float(pixels.max()) <= 1
