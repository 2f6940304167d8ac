"""Regularised ZCA whitening of image tensors, as used on CIFAR by KIP, DataDAM and ATOM.

The transform is kornia's ``ZCAWhitening`` (``eps=0.1``, unbiased covariance), the form DataDAM's and ATOM's
code apply to CIFAR-10/100 before condensation (KIP: Nguyen et al., "Dataset Meta-Learning from Kernel
Ridge-Regression", ICLR 2021, and "Dataset Distillation with Infinitely Wide Convolutional Networks",
NeurIPS 2021, introduced regularised ZCA to dataset distillation). With the images flattened to
``D = C * H * W`` features, mean ``m`` and covariance ``Sigma = U diag(S) U^T``::

    W     = U diag(1 / sqrt(S + eps)) U^T        whiten:   z = (x - m) @ W
    W^-1  = U diag(sqrt(S + eps)) U^T            inverse:  x = z @ W^-1 + m

``eps`` shrinks the whitening of low-variance directions: the whitened covariance is ``U diag(S / (S + eps)) U^T``
rather than the identity.

Memory: the stored eigenvectors are a ``D x D`` float32 matrix: 3072^2 * 4 B = 37.7 MB for CIFAR (3x32x32),
0.6 MB for 1x28x28 (D = 784); fitting needs a float64 covariance (75.5 MB for CIFAR) and its ``eigh`` (about
5-10 s on two CPU cores for D = 3072); ``transform``/``inverse`` cache one ``D x D`` matrix each per device and
dtype (another 37.7 MB each for CIFAR in float32).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from .errors import CondensedFileError, ConfigError, DataError

__all__ = ["ZCA"]

_KEYS = ("zca_mean", "zca_eigvecs", "zca_eigvals", "zca_eps")


class ZCA:
    """A fitted regularised ZCA whitening for images of one shape ``(C, H, W)``.

    Build with :meth:`fit` (from data) or :meth:`from_state_dict` (from a saved condensed set); the
    constructor takes the stored tensors directly and validates them like :meth:`from_state_dict`.

    Args:
        mean: ``(D,)`` feature means. eigvecs: ``(D, D)``, columns are the covariance's eigenvectors.
        eigvals: ``(D,)`` its eigenvalues (>= 0). eps: the regulariser (> 0). shape: the image shape
            ``(C, H, W)`` with ``C * H * W = D``. All tensors are stored as float32 on the CPU.

    Attributes:
        mean, eigvecs, eigvals: the float32 CPU tensors above; eps: float; shape: ``(C, H, W)``; dim: ``D``.

    Raises:
        CondensedFileError: tensors of the wrong rank, size or dtype, non-finite values, negative eigenvalues,
            non-unit eigenvectors, or ``eps <= 0``.
    """

    def __init__(self, mean: torch.Tensor, eigvecs: torch.Tensor, eigvals: torch.Tensor, eps: float,
                 shape: Sequence[int]):
        try:
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise CondensedFileError(f"ZCA image shape must be (C, H, W) integers, got {shape!r}") from None
        if len(shape) != 3 or min(shape) < 1:
            raise CondensedFileError(f"ZCA image shape must be (C, H, W) with positive sizes, got {shape}")
        d = math.prod(shape)
        for name, t, want in (("zca_mean", mean, (d,)), ("zca_eigvecs", eigvecs, (d, d)), ("zca_eigvals", eigvals, (d,))):
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise CondensedFileError(f"ZCA state {name!r} must be a floating-point tensor, "
                                         f"got {type(t).__name__} {getattr(t, 'dtype', '')}".rstrip())
            if tuple(t.shape) != want:
                raise CondensedFileError(f"ZCA state {name!r} has shape {tuple(t.shape)}, expected {want} "
                                         f"for images of shape {shape}")
            if not bool(torch.isfinite(t).all()):
                raise CondensedFileError(f"ZCA state {name!r} contains NaN/Inf values")
        try:
            eps = float(eps)
        except (TypeError, ValueError):
            raise CondensedFileError(f"ZCA eps must be a number, got {eps!r}") from None
        if not (math.isfinite(eps) and eps > 0):
            raise CondensedFileError(f"ZCA eps must be a finite number > 0, got {eps}")
        if bool((eigvals < 0).any()):
            raise CondensedFileError(f"ZCA eigenvalues must be >= 0; the smallest is {float(eigvals.min()):.3g}")
        norms = eigvecs.double().norm(dim=0)
        if not bool(((norms - 1).abs() < 1e-3).all()):
            raise CondensedFileError("ZCA eigenvectors are not unit vectors; the stored state is corrupt")
        self.mean = mean.detach().to("cpu", torch.float32).contiguous()
        self.eigvecs = eigvecs.detach().to("cpu", torch.float32).contiguous()
        self.eigvals = eigvals.detach().to("cpu", torch.float32).contiguous()
        self.eps = eps
        self.shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.dim = d
        self._cache: dict[tuple, torch.Tensor] = {}

    # ---- construction -------------------------------------------------------------------------------------

    @classmethod
    def fit(cls, images: torch.Tensor, eps: float = 0.1, *, batch_size: int = 4096) -> "ZCA":
        """Fit the whitening to ``images``.

        Args:
            images: ``(N, C, H, W)`` floating point (float32 normally; already normalised with the dataset
                mean/std), ``N >= 2``, on any device (the fit runs there).
            eps: the regulariser added to every eigenvalue (kornia's/DataDAM's 0.1 for normalised CIFAR).
            batch_size: rows of images converted to float64 at a time while accumulating the covariance.

        The mean and unbiased covariance (divided by ``N - 1``, as kornia's default) are accumulated in
        float64, ``torch.linalg.eigh`` is run in float64, tiny negative eigenvalues from rounding are clamped
        to 0, and the result is stored as float32 on the CPU.

        Returns:
            the fitted :class:`ZCA`.

        Raises:
            DataError: not a 4-D floating tensor, fewer than 2 images, or NaN/Inf values.
            ConfigError: ``eps`` not a finite number > 0, or ``batch_size < 1``.
        """
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise DataError(f"ZCA.fit needs images of shape (N, C, H, W), got {got}")
        if not images.is_floating_point():
            raise DataError(f"ZCA.fit needs floating-point images (normalise them first), got {images.dtype}")
        n = images.shape[0]
        if n < 2:
            raise DataError(f"ZCA.fit needs at least 2 images to estimate a covariance, got {n}")
        try:
            eps = float(eps)
        except (TypeError, ValueError):
            raise ConfigError(f"ZCA eps must be a number, got {eps!r}") from None
        if not (math.isfinite(eps) and eps > 0):
            raise ConfigError(f"ZCA eps must be a finite number > 0, got {eps}")
        if int(batch_size) < 1:
            raise ConfigError(f"ZCA batch_size must be >= 1, got {batch_size}")
        if not bool(torch.isfinite(images).all()):
            raise DataError("ZCA.fit: the images contain NaN/Inf values")
        flat = images.detach().reshape(n, -1)
        d = flat.shape[1]
        bs = int(batch_size)
        mean = torch.zeros(d, dtype=torch.float64, device=flat.device)
        for i in range(0, n, bs):
            mean += flat[i:i + bs].double().sum(0)
        mean /= n
        cov = torch.zeros(d, d, dtype=torch.float64, device=flat.device)
        for i in range(0, n, bs):
            xc = flat[i:i + bs].double() - mean
            cov.addmm_(xc.T, xc)
        cov /= n - 1
        eigvals, eigvecs = torch.linalg.eigh(cov)
        del cov
        return cls(mean, eigvecs, eigvals.clamp_min(0.0), eps, tuple(images.shape[1:]))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted state as CPU tensors for a safetensors file (no pickle).

        Returns:
            ``{"zca_mean": (D,) float32, "zca_eigvecs": (D, D) float32, "zca_eigvals": (D,) float32,
            "zca_eps": () float64, "zca_shape": (3,) int64}``; :meth:`from_state_dict` restores it exactly.
        """
        return {
            "zca_mean": self.mean.clone(),
            "zca_eigvecs": self.eigvecs.clone(),
            "zca_eigvals": self.eigvals.clone(),
            "zca_eps": torch.tensor(self.eps, dtype=torch.float64),
            "zca_shape": torch.tensor(self.shape, dtype=torch.int64),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], shape: Sequence[int] | None = None) -> "ZCA":
        """Rebuild a :class:`ZCA` from :meth:`state_dict` output (other keys in ``state`` are ignored).

        Args:
            state: must hold ``zca_mean``, ``zca_eigvecs``, ``zca_eigvals`` and the 0-d ``zca_eps``.
            shape: the image shape ``(C, H, W)``; optional when ``state`` holds ``zca_shape``, and must agree
                with it when both are given.

        Raises:
            CondensedFileError: a missing key, no shape, disagreeing shapes, or tensors that are not a valid
                ZCA state (see the class docstring).
        """
        if not isinstance(state, Mapping):
            raise CondensedFileError(f"ZCA state must be a mapping of tensors, got {type(state).__name__}")
        missing = [k for k in _KEYS if k not in state]
        if missing:
            raise CondensedFileError(f"ZCA state lacks {', '.join(missing)}; the file is incomplete or not a ZCA state")
        eps_t = state["zca_eps"]
        if not isinstance(eps_t, torch.Tensor) or eps_t.numel() != 1 or eps_t.dim() != 0:
            raise CondensedFileError("ZCA state 'zca_eps' must be a 0-d tensor")
        stored = state.get("zca_shape")
        if stored is not None:
            if not isinstance(stored, torch.Tensor) or stored.dim() != 1 or stored.is_floating_point():
                raise CondensedFileError("ZCA state 'zca_shape' must be a 1-d integer tensor (C, H, W)")
            stored = tuple(int(s) for s in stored.tolist())
        if shape is None:
            if stored is None:
                raise CondensedFileError("ZCA state has no 'zca_shape' and no image shape was given")
            shape = stored
        else:
            try:
                shape = tuple(int(s) for s in shape)
            except (TypeError, ValueError):
                raise CondensedFileError(f"ZCA image shape must be (C, H, W) integers, got {shape!r}") from None
            if stored is not None and stored != shape:
                raise CondensedFileError(f"ZCA state is for images of shape {stored}, but the file says {shape}")
        return cls(state["zca_mean"], state["zca_eigvecs"], state["zca_eigvals"], float(eps_t), shape)

    # ---- application --------------------------------------------------------------------------------------

    def whitening_matrix(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``W = U diag(1/sqrt(S + eps)) U^T``, ``(D, D)``, built in float64 and cached per device/dtype."""
        return self._matrix(-0.5, torch.device(device), dtype)

    def inverse_matrix(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``W^-1 = U diag(sqrt(S + eps)) U^T``, ``(D, D)``, built in float64 and cached per device/dtype."""
        return self._matrix(0.5, torch.device(device), dtype)

    def _matrix(self, power: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (power, str(device), dtype)
        m = self._cache.get(key)
        if m is None:
            u = self.eigvecs.to(device, torch.float64)
            scale = (self.eigvals.to(device, torch.float64) + self.eps).pow(power)
            m = ((u * scale) @ u.T).to(dtype)
            self._cache[key] = m
        return m

    def _mean(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = ("mean", str(device), dtype)
        m = self._cache.get(key)
        if m is None:
            m = self._cache[key] = self.mean.to(device, dtype)
        return m

    def _check(self, x: torch.Tensor, what: str) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"ZCA.{what} needs images of shape (N, {', '.join(map(str, self.shape))}), got {got}")
        if not x.is_floating_point():
            raise DataError(f"ZCA.{what} needs floating-point images, got {x.dtype}")

    def _apply(self, x: torch.Tensor, power: float, batch_size: int, what: str) -> torch.Tensor:
        self._check(x, what)
        if int(batch_size) < 1:
            raise ConfigError(f"ZCA batch_size must be >= 1, got {batch_size}")
        dtype = x.dtype if x.dtype == torch.float64 else torch.float32  # half precision is computed in float32
        mat = self._matrix(power, x.device, dtype)
        mean = self._mean(x.device, dtype)
        flat = x.reshape(x.shape[0], -1)
        out = torch.empty(flat.shape, dtype=dtype, device=x.device)
        bs = int(batch_size)
        for i in range(0, flat.shape[0], bs):
            chunk = flat[i:i + bs].to(dtype)
            if power < 0:
                out[i:i + bs] = (chunk - mean) @ mat
            else:
                out[i:i + bs] = torch.addmm(mean, chunk, mat)
        return out.to(x.dtype).reshape(x.shape)

    def transform(self, x: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
        """Whiten: ``(N, C, H, W)`` -> ``(N, C, H, W)``, ``(x - mean) @ W`` on ``x``'s device.

        Works ``batch_size`` images at a time (one float32 ``(batch_size, D)`` intermediate); the result has
        ``x``'s dtype (float16/bfloat16 inputs are computed in float32) and is differentiable in ``x``.

        Raises:
            DataError: ``x`` is not ``(N, C, H, W)`` with this ZCA's ``(C, H, W)``, or not floating point.
        """
        return self._apply(x, -0.5, batch_size, "transform")

    def inverse(self, x: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
        """Un-whiten: ``(N, C, H, W)`` -> ``(N, C, H, W)``, ``x @ W^-1 + mean``; the exact inverse of
        :meth:`transform` up to rounding: about 1e-7 relative for float32 and float64 inputs alike, since both
        matrices are built in float64 from the float32-stored eigenvectors. Same batching, device and dtype
        rules.

        Raises:
            DataError: as :meth:`transform`.
        """
        return self._apply(x, 0.5, batch_size, "inverse")

    __call__ = transform

    def __repr__(self) -> str:
        c, h, w = self.shape
        return f"ZCA(shape=({c}, {h}, {w}), eps={self.eps:g})"
