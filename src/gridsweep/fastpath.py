"""Speed path for the recurrent cells of :mod:`gridsweep.models`.

Nothing here defines a model. :data:`gridsweep.models.CELLS` holds the one readable
definition of every cell (one time step, run under autograd); this module holds two
optimisations whose results are checked against that definition, values and gradients,
in ``tests/test_ensemble_equivalence.py`` and ``tests/test_models_parity.py``:

* :func:`fused_recurrence`: the whole sequence as one autograd node with hand-written
  backpropagation through time (:class:`_Recurrence`). Autograd through the per-step
  loop forms the gradient of W_hh as T separate (Ng x B) @ (B x G*Ng) products, each
  allocating and accumulating a full matrix; the fused node keeps the per-step
  pre-activations it needs in time-major buffers (E, T, B, .) and forms the weight
  gradient once, as (Ng x T*B) @ (T*B x G*Ng): the same FLOPs in one large product
  (docs/performance.md). Only the built-in cells and activations listed in
  :data:`FUSED` / :data:`FUSED_ACTIVATIONS` have a kernel; any other cell runs its
  reference step under autograd, so adding a cell means writing its step once.
* :func:`bmm`: large float32 CPU products by a weight matrix through oneDNN
  (``torch.ops.mkldnn._linear_pointwise``, a private operator) instead of MKL; on CPUs
  where MKL does not use AVX-512 (AMD) these run 1.1-1.35x faster. Whenever that
  operator is missing or raises, the product falls back to the public ``torch.bmm``.
"""

from __future__ import annotations

import os

import torch
from torch.autograd.function import once_differentiable

__all__ = ["bmm", "fused_recurrence", "fused_supported", "FUSED", "FUSED_ACTIVATIONS", "ONEDNN_MATMUL",
           "ONEDNN_MIN_MACS", "onednn_available"]

# --------------------------------------------------------------------------------------
# large float32 products on the CPU through oneDNN
# --------------------------------------------------------------------------------------
#: Route large float32 CPU products by a weight matrix (``h @ W_hh``, ``dS @ W_hh^T``, the
#: readout and encoder) through oneDNN (``torch.ops.mkldnn``) instead of ``torch.bmm``
#: (MKL). Default from ``GRIDSWEEP_ONEDNN`` (``0`` turns it off); float64, GPUs and small
#: products always use ``torch.bmm``.
ONEDNN_MATMUL: bool = os.environ.get("GRIDSWEEP_ONEDNN", "1").strip() != "0"
#: Smallest product (multiply-adds per network) sent to oneDNN; below it the per-network
#: calls cost more than they save.
ONEDNN_MIN_MACS = 1 << 27
_onednn_works: bool | None = None
_ONEDNN_ERRORS = (RuntimeError, AttributeError, NotImplementedError, TypeError)


def _onednn_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w.T`` for 2-D float32 CPU tensors through oneDNN (private operator)."""
    return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")


def onednn_available() -> bool:
    """True when this torch build has a working oneDNN linear (probed once)."""
    global _onednn_works
    if _onednn_works is None:
        try:
            g = torch.Generator().manual_seed(0)
            x, w = torch.randn(8, 16, generator=g), torch.randn(4, 16, generator=g)
            _onednn_works = bool(torch.backends.mkldnn.is_available()
                                 and torch.allclose(_onednn_linear(x, w), x @ w.T, rtol=1e-4, atol=1e-5))
        except _ONEDNN_ERRORS:
            _onednn_works = False
    return _onednn_works


def _use_onednn(x: torch.Tensor, macs: int) -> bool:
    return (ONEDNN_MATMUL and x.device.type == "cpu" and x.dtype == torch.float32 and macs >= ONEDNN_MIN_MACS
            and onednn_available())


def _mm_nt(a: torch.Tensor, bt: torch.Tensor) -> torch.Tensor:
    """``a @ bt^T`` per network: (E, M, K), (E, N, K) -> (E, M, N).

    Through oneDNN while it works; if the private operator raises, it is switched off for
    the process and the product is computed by ``torch.bmm``.
    """
    global _onednn_works
    if _onednn_works is not False:
        try:
            outs = [_onednn_linear(a[e].contiguous(), bt[e].contiguous()) for e in range(a.shape[0])]
            return outs[0].unsqueeze(0) if len(outs) == 1 else torch.stack(outs)
        except _ONEDNN_ERRORS:
            _onednn_works = False
    return torch.bmm(a, bt.transpose(1, 2))


class _OneDNNBmm(torch.autograd.Function):
    """``torch.bmm(x, W)`` with the products by W (forward, input gradient) through oneDNN.

    The weight gradient x^T @ dout stays with ``torch.bmm``: oneDNN's linear is slower for
    that shape (it would need both operands transposed; measured 0.6x).
    """

    @staticmethod
    def forward(ctx, x, W):
        ctx.save_for_backward(x, W)
        return _mm_nt(x, W.transpose(1, 2))

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        x, W = ctx.saved_tensors
        dx = _mm_nt(dout, W) if ctx.needs_input_grad[0] else None
        dW = torch.bmm(x.transpose(1, 2), dout) if ctx.needs_input_grad[1] else None
        return dx, dW


def bmm(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``torch.bmm(x, W)``, (E, M, K) @ (E, K, N), through oneDNN when that is faster."""
    if _use_onednn(x, x.shape[1] * x.shape[2] * W.shape[2]):
        return _OneDNNBmm.apply(x, W)
    return torch.bmm(x, W)


# --------------------------------------------------------------------------------------
# fused recurrence: the whole sequence as one autograd node with hand-written BPTT
# --------------------------------------------------------------------------------------
_ACT = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "linear": lambda x: x}
#: activations the fused kernels know (by name; models.py checks they are the built-in ones)
FUSED_ACTIVATIONS = tuple(_ACT)


def _act_inplace(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "relu":
        return x.relu_()
    if name == "tanh":
        return x.tanh_()
    if name == "sigmoid":
        return x.sigmoid_()
    return x  # linear


def _act_grad(name: str, g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``g * act'(pre)`` from the activation's output ``y = act(pre)`` (as torch's own backward)."""
    if name == "relu":
        return torch.ops.aten.threshold_backward(g, y, 0)
    if name == "tanh":
        return g * (1 - y * y)
    if name == "sigmoid":
        return g * ((1 - y) * y)
    return g  # linear


def _sig_grad(g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return g * ((1 - s) * s)


def _add_bias_(x: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return x if b is None else x.add_(b)


def _recur_mm(h, W, Wt, out, xw_t=None):
    """``out = xw_t + h @ W`` (or ``h @ W``); ``Wt`` is W^T (contiguous) on the oneDNN path, else None."""
    if Wt is None:
        return torch.bmm(h, W, out=out) if xw_t is None else torch.baddbmm(xw_t, h, W, out=out)
    prod = _mm_nt(h, Wt)
    return out.copy_(prod) if xw_t is None else torch.add(xw_t, prod, out=out)


# Each cell has a forward step and a backward step over time-major buffers:
#   xw (E, T, B, G*Ng) input projection; H (E, T, B, Ng) outputs; S (E, T, B, G*Ng) saved
#   pre-activations (for the GRU: h @ W_hh + b_hh); C (E, T, B, Ng) memory cells (LSTM).
#   ``aux`` = (b_hh, gate_offset) as in models.Recurrent.
# Backward steps write dS[:, t] = d(loss)/d S[:, t] (and dX[:, t] = d(loss)/d xw[:, t] for
# the GRU, whose input and recurrent terms enter differently) and return the gradients
# carried to h_{t-1} and c_{t-1}, excluding the W_hh^T product that the driver adds.
# Each mirrors the reference step of the same name in gridsweep.models.

def _rnn_fwd(t, act, xw, h, c, W, Wt, b, H, S, C, aux):
    out = _recur_mm(h, W, Wt, H[:, t], xw[:, t])
    return _act_inplace(act, _add_bias_(out, b)), None


def _rnn_bwd(t, act, g, gc, h_prev, c_prev, H, S, C, dS, dX, xw, b, aux):
    dS[:, t] = _act_grad(act, g, H[:, t])
    return None, None


def _lstm_fwd(t, act, xw, h, c, W, Wt, b, H, S, C, aux):
    pre = _add_bias_(_recur_mm(h, W, Wt, S[:, t], xw[:, t]), b)
    i, f, g, o = pre.chunk(4, dim=-1)
    c = torch.add(torch.sigmoid(f) * c, torch.sigmoid(i) * _ACT[act](g), out=C[:, t])
    return torch.mul(torch.sigmoid(o), _ACT[act](c), out=H[:, t]), c


def _lstm_bwd(t, act, gh, gc, h_prev, c_prev, H, S, C, dS, dX, xw, b, aux):
    i, f, g, o = S[:, t].chunk(4, dim=-1)
    si, sf, so, ag = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), _ACT[act](g)
    ac = _ACT[act](C[:, t])
    dc = _act_grad(act, gh * so, ac)
    if gc is not None:
        dc = dc + gc
    di, df, dg, do = dS[:, t].chunk(4, dim=-1)
    di.copy_(_sig_grad(dc * ag, si))
    df.copy_(_sig_grad(dc * c_prev, sf))
    dg.copy_(_act_grad(act, dc * si, ag))
    do.copy_(_sig_grad(gh * ac, so))
    return None, dc * sf


def _gru_gates(t, act, xw, b, S):
    x = xw[:, t] if b is None else xw[:, t] + b
    xr, xz, xn = x.chunk(3, dim=-1)
    hr, hz, hn = S[:, t].chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = _ACT[act](xn + r * hn)
    return r, z, n, hn


def _gru_fwd(t, act, xw, h, c, W, Wt, b, H, S, C, aux):
    _add_bias_(_recur_mm(h, W, Wt, S[:, t]), aux[0])
    r, z, n, _ = _gru_gates(t, act, xw, b, S)
    return torch.add((1 - z) * n, z * h, out=H[:, t]), None


def _gru_bwd(t, act, g, gc, h_prev, c_prev, H, S, C, dS, dX, xw, b, aux):
    r, z, n, hn = _gru_gates(t, act, xw, b, S)
    dn = _act_grad(act, g * (1 - z), n)
    dr = _sig_grad(dn * hn, r)
    dz = _sig_grad(g * (h_prev - n), z)
    xr_, xz_, xn_ = dX[:, t].chunk(3, dim=-1)
    hr_, hz_, hn_ = dS[:, t].chunk(3, dim=-1)
    xr_.copy_(dr), xz_.copy_(dz), xn_.copy_(dn)
    hr_.copy_(dr), hz_.copy_(dz), torch.mul(dn, r, out=hn_)
    return g * z, None


def _ugrnn_fwd(t, act, xw, h, c, W, Wt, b, H, S, C, aux):
    pre = _add_bias_(_recur_mm(h, W, Wt, S[:, t], xw[:, t]), b)
    gpre, cand = pre.chunk(2, dim=-1)
    gs = torch.sigmoid(gpre + aux[1]) if aux[1] else torch.sigmoid(gpre)
    return torch.add(gs * h, (1 - gs) * _ACT[act](cand), out=H[:, t]), None


def _ugrnn_bwd(t, act, g, gc, h_prev, c_prev, H, S, C, dS, dX, xw, b, aux):
    gpre, cand = S[:, t].chunk(2, dim=-1)
    gs = torch.sigmoid(gpre + aux[1]) if aux[1] else torch.sigmoid(gpre)
    a = _ACT[act](cand)
    dgate, dcand = dS[:, t].chunk(2, dim=-1)
    dgate.copy_(_sig_grad(g * (h_prev - a), gs))
    dcand.copy_(_act_grad(act, g * (1 - gs), a))
    return g * gs, None


#: cell -> (forward step, backward step, saves pre-activations, separate input gradient)
FUSED = {
    "rnn": (_rnn_fwd, _rnn_bwd, False, False),
    "lstm": (_lstm_fwd, _lstm_bwd, True, False),
    "gru": (_gru_fwd, _gru_bwd, True, True),
    "ugrnn": (_ugrnn_fwd, _ugrnn_bwd, True, False),
}


def fused_supported(cell: str, activation: str, b_hh: torch.Tensor | None = None, gate_offset: float = 0.0) -> bool:
    """True when a fused kernel covers this cell, activation and cell options."""
    if cell not in FUSED or activation not in FUSED_ACTIVATIONS:
        return False
    if b_hh is not None and cell != "gru":
        return False
    return not (gate_offset and cell != "ugrnn")


def _recurrence_forward(cell, act, xw, h0, c0, W, b, aux):
    """Run the recurrence over time-major ``xw`` (E, T, B, G*Ng); returns H, S, C."""
    fwd, _, saves, _ = FUSED[cell]
    E, T, B, _ = xw.shape
    Ng = W.shape[1]
    kw = dict(dtype=xw.dtype, device=xw.device)
    H = torch.empty(E, T, B, Ng, **kw)
    S = torch.empty(E, T, B, W.shape[2], **kw) if saves else None
    C = torch.empty(E, T, B, Ng, **kw) if c0 is not None else None
    Wt = W.transpose(1, 2).contiguous() if _use_onednn(W, B * Ng * W.shape[2]) else None
    h, c = h0, c0
    for t in range(T):
        h, c = fwd(t, act, xw, h, c, W, Wt, b, H, S, C, aux)
    return H, S, C


class _Recurrence(torch.autograd.Function):
    """Time-major recurrence with hand-written backpropagation through time."""

    @staticmethod
    def forward(ctx, xw, h0, c0, W, b, b_hh, cell, act, gate_offset):
        aux = (b_hh, gate_offset)
        H, S, C = _recurrence_forward(cell, act, xw, h0, c0, W, b, aux)
        ctx.cell, ctx.act, ctx.gate_offset = cell, act, gate_offset
        ctx.save_for_backward(xw, h0, c0, W, b, b_hh, H, S, C)
        return H

    @staticmethod
    @once_differentiable
    def backward(ctx, dH):
        xw, h0, c0, W, b, b_hh, H, S, C = ctx.saved_tensors
        cell, act, aux = ctx.cell, ctx.act, (b_hh, ctx.gate_offset)
        _, bwd, _, separate_x = FUSED[cell]
        E, T, B, GN = xw.shape
        Ng = W.shape[1]
        dS = torch.empty(E, T, B, GN, dtype=xw.dtype, device=xw.device)
        dX = torch.empty_like(dS) if separate_x else dS
        Wt = W.transpose(1, 2)
        onednn = _use_onednn(W, B * GN * Ng)
        dh = dc = None
        for t in range(T - 1, -1, -1):
            g = dH[:, t] if dh is None else dH[:, t] + dh
            h_prev = H[:, t - 1] if t > 0 else h0
            c_prev = (C[:, t - 1] if t > 0 else c0) if C is not None else None
            direct, dc = bwd(t, act, g, dc, h_prev, c_prev, H, S, C, dS, dX, xw, b, aux)
            if onednn:  # dS_t @ W^T
                dh = _mm_nt(dS[:, t], W) if direct is None else direct.add_(_mm_nt(dS[:, t], W))
            else:
                dh = torch.bmm(dS[:, t], Wt) if direct is None else torch.baddbmm(direct, dS[:, t], Wt)
        dW = None
        if ctx.needs_input_grad[3]:  # one (Ng x T*B) @ (T*B x G*Ng) product (MKL is faster here than oneDNN)
            dW = torch.bmm(h0.transpose(1, 2), dS[:, 0])
            if T > 1:
                dW.baddbmm_(H[:, :-1].reshape(E, (T - 1) * B, Ng).transpose(1, 2), dS[:, 1:].reshape(E, (T - 1) * B, GN))
        db = dX.sum(dim=(1, 2)).unsqueeze(1) if (b is not None and ctx.needs_input_grad[4]) else None
        db_hh = dS.sum(dim=(1, 2)).unsqueeze(1) if (b_hh is not None and ctx.needs_input_grad[5]) else None
        return dX, dh, dc, dW, db, db_hh, None, None, None


def fused_recurrence(cell: str, activation: str, xw: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor | None,
                     W_hh: torch.Tensor, b: torch.Tensor | None = None, b_hh: torch.Tensor | None = None,
                     gate_offset: float = 0.0) -> torch.Tensor:
    """Hidden states of a built-in cell over a whole sequence, as one autograd node.

    Parameters
    ----------
    cell, activation : str
        Names accepted by :func:`fused_supported`.
    xw : Tensor, (E, T, B, G*Ng)
        Input projection, time-major.
    h0, c0 : Tensor, (E, B, Ng); c0 is None except for the LSTM
    W_hh : Tensor, (E, Ng, G*Ng)
    b, b_hh : Tensor, (E, 1, G*Ng) or None
        Input-side bias and (GRU only) recurrent-side bias, as in ``models.Recurrent``.
    gate_offset : float
        Constant added to the UGRNN gate pre-activation.

    Returns
    -------
    Tensor, (E, T, B, Ng)
        Equal, up to rounding, to stepping the reference cell of :data:`gridsweep.models.CELLS`.
    """
    return _Recurrence.apply(xw, h0, c0, W_hh, b, b_hh, cell, activation, float(gate_offset))
