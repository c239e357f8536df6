"""The fused readout loss (gridsweep.fused) against the reference path it replaces.

Reference: ``cross_entropy(logits, target.encode(positions))`` under autograd
(gridsweep.targets, docs/science.md section 3). Tolerances: 1e-6 in float32 and 1e-12 in
float64, relative to the largest magnitude of the compared quantity (values, targets and
gradients with respect to the logits).
"""

from __future__ import annotations

import pytest
import torch

from gridsweep import fused
from gridsweep.config import HeadDirectionConfig, TargetConfig
from gridsweep.targets import build_head_direction, build_target, cross_entropy

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}

KINDS = [
    ("gaussian", {}),
    ("dos", {"surround_width_ratio": 2.0}),
    ("dog_equinorm", {"surround_width_ratio": 2.0}),
    ("dog_general", {"surround_width_ratio": 1.5, "alpha_e": 1.0, "alpha_i": 0.6}),
    ("sod", {"surround_width_ratio": 2.0}),
]
DTYPES = [torch.float32, torch.float64]


def _close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> None:
    scale = b.abs().max().clamp_min(torch.finfo(dtype).tiny)
    err = float((a - b).abs().max() / scale)
    assert err <= TOL[dtype], f"relative error {err:.3g} > {TOL[dtype]:.0e}"


def _case(kind, extra, dtype, E=3, Np=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfgs = [TargetConfig(kind=kind, n_cells=Np, sigma=0.12 + 0.03 * e, **extra) for e in range(E)]
    target = build_target(cfgs, list(range(1, E + 1)), dtype=dtype)
    pos = ((torch.rand(E, 4, 6, 2, generator=g, dtype=dtype) - 0.5) * 2.2)
    logits = (3 * torch.randn(E, 4, 6, Np, generator=g, dtype=dtype)).requires_grad_(True)
    weights = torch.tensor([1.0, 2.5, 0.0][:E], dtype=dtype)  # upstream gradient per network (0: frozen)
    return target, pos, logits, weights


def _loss_and_grad(fn, logits, weights):
    logits.grad = None
    loss = fn(logits)
    (loss * weights).sum().backward()
    return loss.detach(), logits.grad.clone()


def _reference(target, pos, logits, weights):
    return _loss_and_grad(lambda z: cross_entropy(z, target.encode(pos)), logits, weights)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,extra", KINDS)
def test_eager_targets_equal_encode(kind, extra, dtype):
    target, pos, _, _ = _case(kind, extra, dtype)
    ref = target.encode(pos)
    out = fused.place_cell_targets(target, pos)
    assert out.shape == ref.shape and not out.requires_grad
    _close(out, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,extra", KINDS)
@pytest.mark.parametrize("mode", ["eager", "native"])
def test_loss_and_gradient_equal_reference(kind, extra, dtype, mode):
    if mode == "native" and not fused.native_available():
        pytest.skip("no C compiler: the native kernel is not built here")
    target, pos, logits, w = _case(kind, extra, dtype)
    ref_loss, ref_grad = _reference(target, pos, logits, w)
    loss, grad = _loss_and_grad(lambda z: fused.place_cell_loss(z, pos, target, mode), logits, w)
    assert loss.shape == (3,)
    _close(loss, ref_loss, dtype)
    _close(grad, ref_grad, dtype)
    assert float(grad[2].abs().max()) == 0.0  # a network with zero upstream gradient gets none


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,extra", KINDS)
def test_native_targets_equal_encode(kind, extra, dtype):
    if not fused.native_available():
        pytest.skip("no C compiler: the native kernel is not built here")
    target, pos, logits, _ = _case(kind, extra, dtype)
    _, _, t = fused._run_kernel(target, logits, pos, want_grad=False, want_targets=True)
    _close(t.view(*pos.shape[:-1], -1), target.encode(pos), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_unnormalised_targets(dtype):
    """Arbitrary non-negative targets (not summing to one): value and gradient of the reference."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 5, 7, 11, generator=g, dtype=dtype, requires_grad=True)
    t = torch.rand(2, 5, 7, 11, generator=g, dtype=dtype) * 3
    w = torch.tensor([0.5, 2.0], dtype=dtype)
    ref = _loss_and_grad(lambda x: cross_entropy(x, t), z, w)
    out = _loss_and_grad(lambda x: fused.softmax_cross_entropy(x, t), z, w)
    for a, b in zip(out, ref):
        _close(a, b, dtype)


def test_readout_loss_with_head_direction_slices_columns():
    """Place cells in columns 0..Np-1 and head-direction cells after them, as training lays them out."""
    dtype = torch.float64
    target, pos, _, w = _case("dos", {"surround_width_ratio": 2.0}, dtype)
    hd = build_head_direction(HeadDirectionConfig(n_cells=12, kappa=2.0), [1, 2, 3], dtype)
    g = torch.Generator().manual_seed(5)
    heads = torch.rand(3, 4, 6, generator=g, dtype=dtype) * 6.28
    out = torch.randn(3, 4, 6, 48 + 12, generator=g, dtype=dtype, requires_grad=True)

    def total(mode):
        old = fused.MODE
        fused.MODE = mode
        try:
            return _loss_and_grad(lambda z: fused.readout_loss(target, z, pos)
                                  + 0.5 * fused.readout_loss(hd, z, heads, start=48), out, w)
        finally:
            fused.MODE = old

    ref = total("reference")
    ref_direct = _loss_and_grad(lambda z: cross_entropy(z[..., :48], target.encode(pos))
                                + 0.5 * cross_entropy(z[..., 48:], hd.encode(heads)), out, w)
    _close(ref[0], ref_direct[0], dtype)
    for mode in ("eager", "auto"):
        for a, b in zip(total(mode), ref):
            _close(a, b, dtype)


def test_shared_targets_are_encoded_once_and_equal():
    """Networks with equal centres, widths and positions share one encoding; others do not."""
    dtype = torch.float64
    cfg = TargetConfig(kind="dos", n_cells=32, surround_width_ratio=2.0)
    target = build_target([cfg] * 4, [7, 7, 8, 7], dtype=dtype)  # networks 0, 1, 3 share parameters
    g = torch.Generator().manual_seed(0)
    pos = (torch.rand(4, 3, 5, 2, generator=g, dtype=dtype) - 0.5) * 2
    pos[1] = pos[0]  # network 1 also shares positions with 0; network 3 does not
    calls = []
    original = fused._encode_one_pass_set

    def counting(t, p):
        calls.append(t.E)
        return original(t, p)

    fused._encode_one_pass_set = counting
    try:
        out = fused.place_cell_targets(target, pos)
    finally:
        fused._encode_one_pass_set = original
    assert calls == [3]  # networks 0, 2, 3 encoded; 1 reuses 0
    assert torch.equal(out, target.encode(pos))


def test_nonfinite_logits_give_nonfinite_loss():
    """A diverged network must be seen as diverged (training freezes it on a non-finite loss)."""
    for mode in ("eager", "native"):
        if mode == "native" and not fused.native_available():
            continue
        target, pos, logits, _ = _case("dos", {"surround_width_ratio": 2.0}, torch.float32)
        z = logits.detach().clone()
        z[1, 0, 0, 3] = float("nan")
        loss = fused.place_cell_loss(z, pos, target, mode)
        assert torch.isfinite(loss[0]) and not torch.isfinite(loss[1]), mode


def test_multifield_and_periodic_fall_back_to_encode():
    from gridsweep.config import BoxConfig

    dtype = torch.float64
    cfg = TargetConfig(kind="dos", n_cells=16, surround_width_ratio=2.0)
    box = BoxConfig(boundary="periodic")
    target = build_target(cfg, [1, 2], box, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    pos = (torch.rand(2, 3, 2, generator=g, dtype=dtype) - 0.5) * 2
    z = torch.randn(2, 3, 16, generator=g, dtype=dtype, requires_grad=True)
    assert not fused.native_supported(target, z)
    w = torch.ones(2, dtype=dtype)
    ref = _reference(target, pos, z, w)
    for a, b in zip(_loss_and_grad(lambda x: fused.place_cell_loss(x, pos, target), z, w), ref):
        _close(a, b, dtype)


def test_bad_mode_is_a_config_error():
    from gridsweep.errors import ConfigError

    old = fused.MODE
    fused.MODE = "fast"
    try:
        with pytest.raises(ConfigError, match="GRIDSWEEP_FUSED='fast'"):
            fused.readout_loss(*_case("dos", {"surround_width_ratio": 2.0}, torch.float64)[:3:2],
                               torch.zeros(3, 4, 6, 2, dtype=torch.float64))
    finally:
        fused.MODE = old
