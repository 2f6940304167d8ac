"""Regularised ZCA whitening: whitened spectrum S/(S+eps), exact inverse, exact state round trip, errors."""
from __future__ import annotations

import pytest
import torch

from atom_plugin.errors import CondensedFileError, ConfigError, DataError
from atom_plugin.zca import ZCA


def _correlated(n: int = 200, shape=(1, 4, 4), seed: int = 0) -> torch.Tensor:
    """Images with a strongly non-white covariance (random mixing, varied scales, non-zero mean)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.Size(shape).numel()
    mix = torch.randn(d, d, generator=g) * torch.logspace(-2, 1, d).unsqueeze(0)
    x = torch.randn(n, d, generator=g) @ mix + 3.0 * torch.randn(d, generator=g)
    return x.reshape(n, *shape).float()


@pytest.fixture(scope="module")
def data():
    return _correlated()


@pytest.fixture(scope="module")
def zca(data):
    return ZCA.fit(data, eps=0.1)


def test_fit_matches_float64_reference(data, zca):
    x = data.reshape(len(data), -1).double()
    mean = x.mean(0)
    cov = torch.cov(x.T)  # unbiased, as kornia
    s, _ = torch.linalg.eigh(cov)
    assert zca.shape == (1, 4, 4) and zca.dim == 16 and zca.eps == 0.1
    assert zca.mean.dtype == zca.eigvecs.dtype == zca.eigvals.dtype == torch.float32
    torch.testing.assert_close(zca.mean.double(), mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(zca.eigvals.double(), s.clamp_min(0), rtol=1e-5, atol=1e-6)
    # U diag(S) U^T reproduces the covariance
    u, sv = zca.eigvecs.double(), zca.eigvals.double()
    torch.testing.assert_close((u * sv) @ u.T, cov, rtol=1e-4, atol=1e-4 * float(s.max()))


@pytest.mark.parametrize("eps", [0.1, 1e-3])
def test_whitened_covariance_spectrum_is_s_over_s_plus_eps(data, eps):
    zca = ZCA.fit(data, eps=eps)
    z = zca.transform(data)
    assert z.shape == data.shape and z.dtype == torch.float32
    zf = z.reshape(len(z), -1).double()
    assert zf.mean(0).abs().max() < 1e-4
    cov_z = torch.cov(zf.T)
    s = zca.eigvals.double()
    want = s / (s + eps)
    # in the eigenbasis the whitened covariance is diagonal with entries S / (S + eps)
    u = zca.eigvecs.double()
    torch.testing.assert_close(u.T @ cov_z @ u, torch.diag(want), rtol=1e-4, atol=1e-4)
    got, _ = torch.linalg.eigh(cov_z)
    torch.testing.assert_close(got, want.sort().values, rtol=1e-4, atol=1e-4)
    # the test data's spectrum spans 1e-6 .. 1e3, so the regulariser matters for some directions only
    assert want.max() > 0.999 and want.min() < 0.5


def test_well_conditioned_data_is_whitened_to_identity():
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    cov = (q * torch.linspace(1, 10, 16, dtype=torch.float64)) @ q.T
    x = torch.randn(400, 16, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T + 5
    zca = ZCA.fit(x.float().reshape(400, 1, 4, 4), eps=1e-6)
    z = zca.transform(x.float().reshape(400, 1, 4, 4)).reshape(400, -1).double()
    torch.testing.assert_close(torch.cov(z.T), torch.eye(16, dtype=torch.float64), rtol=0, atol=1e-4)
    # ZCA (unlike PCA whitening) is the symmetric whitening: the closest whitened data to the input
    w = zca.whitening_matrix().double()
    torch.testing.assert_close(w, w.T, rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 7, 4096])
def test_inverse_round_trip(data, zca, batch_size):
    z = zca.transform(data, batch_size=batch_size)
    back = zca.inverse(z, batch_size=batch_size)
    assert back.shape == data.shape
    assert (back - data).norm() / data.norm() < 1e-4
    torch.testing.assert_close(back, data, rtol=1e-4, atol=1e-4 * float(data.abs().max()))
    # batching does not change the result
    torch.testing.assert_close(z, zca.transform(data), rtol=1e-6, atol=1e-6)


def test_matrices_are_inverse_and_match_formula(zca):
    w, wi = zca.whitening_matrix(), zca.inverse_matrix()
    torch.testing.assert_close((w.double() @ wi.double()), torch.eye(16, dtype=torch.float64), rtol=0, atol=1e-5)
    u, s = zca.eigvecs.double(), zca.eigvals.double()
    torch.testing.assert_close(w.double(), (u * (s + 0.1).rsqrt()) @ u.T, rtol=1e-6, atol=1e-6)
    assert zca.whitening_matrix() is w  # cached


def test_float64_input_stays_float64_and_is_differentiable(data, zca):
    x = data.double().requires_grad_(True)
    z = zca.transform(x)
    assert z.dtype == torch.float64
    z.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # the matrices are built in float64 from the float32-stored eigenvectors: exact up to ~1e-7 relative
    back = zca.inverse(z.detach())
    assert back.dtype == torch.float64
    assert (back - data.double()).norm() / data.norm() < 1e-6


def test_state_round_trip_is_exact(data, zca):
    state = zca.state_dict()
    assert set(state) == {"zca_mean", "zca_eigvecs", "zca_eigvals", "zca_eps", "zca_shape"}
    assert state["zca_eps"].dim() == 0 and state["zca_eigvecs"].shape == (16, 16)
    extra = dict(state, images=torch.zeros(3, 1, 4, 4))  # other tensors of a condensed file are ignored
    for again in (ZCA.from_state_dict(extra, (1, 4, 4)), ZCA.from_state_dict(state)):
        assert again.shape == zca.shape and again.eps == zca.eps
        for k, v in again.state_dict().items():
            assert torch.equal(v, state[k]) and v.dtype == state[k].dtype, k
        assert torch.equal(again.transform(data), zca.transform(data))
        assert torch.equal(again.inverse(data), zca.inverse(data))


def test_state_survives_safetensors(tmp_path, data, zca):
    st = pytest.importorskip("safetensors.torch")
    path = tmp_path / "zca.safetensors"
    st.save_file(zca.state_dict(), str(path))
    again = ZCA.from_state_dict(st.load_file(str(path)), (1, 4, 4))
    assert torch.equal(again.transform(data), zca.transform(data))


def test_rgb_images_round_trip():
    x = _correlated(n=300, shape=(3, 4, 4), seed=1)
    zca = ZCA.fit(x)
    assert zca.shape == (3, 4, 4) and zca.eigvecs.shape == (48, 48)
    back = zca.inverse(zca.transform(x))
    assert (back - x).norm() / x.norm() < 1e-4


def _bad_states(zca):
    s = zca.state_dict()
    yield "lacks zca_eigvecs", {k: v for k, v in s.items() if k != "zca_eigvecs"}, None
    yield "shape", dict(s, zca_mean=s["zca_mean"][:-1]), None
    yield "shape", dict(s, zca_eigvecs=s["zca_eigvecs"][:, :-1]), None
    yield "floating-point", dict(s, zca_eigvals=s["zca_eigvals"].long()), None
    yield "NaN", dict(s, zca_mean=torch.full_like(s["zca_mean"], float("nan"))), None
    yield "eps", dict(s, zca_eps=torch.tensor(0.0)), None
    yield "0-d", dict(s, zca_eps=torch.tensor([0.1])), None
    yield ">= 0", dict(s, zca_eigvals=-s["zca_eigvals"] - 1), None
    yield "unit", dict(s, zca_eigvecs=2 * s["zca_eigvecs"]), None
    yield "file says", s, (3, 4, 4)
    yield "no image shape", {k: v for k, v in s.items() if k != "zca_shape"}, None
    yield "image shape", {k: v for k, v in s.items() if k != "zca_shape"}, (1, 4)
    yield "mapping", [1, 2], None


def test_invalid_state_raises_condensed_file_error(zca):
    for match, state, shape in _bad_states(zca):
        with pytest.raises(CondensedFileError, match=match):
            ZCA.from_state_dict(state, shape)


def test_invalid_inputs(data, zca):
    with pytest.raises(DataError, match="shape"):
        zca.transform(torch.zeros(2, 3, 4, 4))
    with pytest.raises(DataError, match="shape"):
        zca.inverse(torch.zeros(1, 4, 4))
    with pytest.raises(DataError, match="floating"):
        zca.transform(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(DataError, match="at least 2"):
        ZCA.fit(data[:1])
    with pytest.raises(DataError, match="NaN"):
        ZCA.fit(torch.full((4, 1, 2, 2), float("inf")))
    with pytest.raises(DataError, match="floating"):
        ZCA.fit(torch.zeros(4, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"\(N, C, H, W\)"):
        ZCA.fit(torch.zeros(4, 16))
    with pytest.raises(ConfigError, match="eps"):
        ZCA.fit(data, eps=0.0)
    with pytest.raises(ConfigError, match="batch_size"):
        zca.transform(data, batch_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(data, zca):
    z = zca.transform(data.cuda())
    assert z.device.type == "cuda"
    torch.testing.assert_close(z.cpu(), zca.transform(data), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(zca.inverse(z).cpu(), data, rtol=1e-4, atol=1e-4 * float(data.abs().max()))
    fitted = ZCA.fit(data.cuda())
    torch.testing.assert_close(fitted.eigvals, zca.eigvals, rtol=1e-4, atol=1e-5)
