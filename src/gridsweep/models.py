"""Recurrent path integrators with a leading ensemble axis.

Structure (Sorscher et al., SCIENCE.md section 3): the initial hidden state is a linear
map, without bias, of the target code at the start position; a recurrent core driven by
the velocity input; an optional linear bottleneck (Banino et al. 2018) and dropout; a
linear readout to the targets.

Every parameter is stacked over ``E`` networks (shape ``(E, ...)``) and every operation
is a batched matrix product (``torch.baddbmm`` / ``torch.bmm``), so E networks of the
same shape step together as one computation while staying mathematically independent:
network e's outputs and gradients depend on slice e alone. A single network is E = 1.

Cells are registered in :data:`CELLS`; each knows its number of gate blocks and how to
advance one step.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from gridsweep.config import ModelConfig
from gridsweep.errors import ConfigError
from gridsweep.seeding import torch_generator

__all__ = ["PathIntegrator", "build_model", "CELLS", "ACTIVATIONS", "CellSpec"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "linear": lambda x: x,
}
_BUILTIN_ACTIVATIONS = dict(ACTIVATIONS)


@dataclass(frozen=True)
class CellSpec:
    """A recurrent cell: ``gates`` blocks of Ng pre-activations and a step function.

    ``step(xw, h, c, W_hh, b, act) -> (h, c)`` with xw (E, B, gates*Ng) the input
    projection, h and c (E, B, Ng) (c is None for cells without a memory cell), W_hh
    (E, Ng, gates*Ng), b (E, 1, gates*Ng) or None.
    """

    gates: int
    has_memory: bool
    step: Callable


def _rnn_step(xw, h, c, W_hh, b, act):
    pre = torch.baddbmm(xw, h, W_hh)
    if b is not None:
        pre = pre + b
    return act(pre), None


def _lstm_step(xw, h, c, W_hh, b, act):
    pre = torch.baddbmm(xw, h, W_hh)
    if b is not None:
        pre = pre + b
    i, f, g, o = pre.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * act(g)
    return torch.sigmoid(o) * act(c), c


def _gru_step(xw, h, c, W_hh, b, act):
    hh = torch.bmm(h, W_hh)
    if b is not None:
        xw = xw + b
    xr, xz, xn = xw.chunk(3, dim=-1)
    hr, hz, hn = hh.chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = act(xn + r * hn)
    return (1 - z) * n + z * h, None


def _ugrnn_step(xw, h, c, W_hh, b, act):
    """Update-gate RNN (Collins, Sohl-Dickstein & Sussillo 2017)."""
    pre = torch.baddbmm(xw, h, W_hh)
    if b is not None:
        pre = pre + b
    g, cand = pre.chunk(2, dim=-1)
    g = torch.sigmoid(g)
    return g * h + (1 - g) * act(cand), None


#: cell name -> CellSpec. For gated cells ``activation`` replaces the candidate (and, for
#: the LSTM, the cell-output) nonlinearity, as in Keras.
CELLS: dict[str, CellSpec] = {
    "rnn": CellSpec(1, False, _rnn_step),
    "lstm": CellSpec(4, True, _lstm_step),
    "gru": CellSpec(3, False, _gru_step),
    "ugrnn": CellSpec(2, False, _ugrnn_step),
}


# --------------------------------------------------------------------------------------
# large float32 products on the CPU through oneDNN
# --------------------------------------------------------------------------------------
#: Route large float32 CPU products by a weight matrix (``h @ W_hh``, ``dS @ W_hh^T``, the
#: readout and encoder) through oneDNN (``torch.ops.mkldnn``) instead of ``torch.bmm``
#: (MKL). On CPUs where MKL does not use AVX-512 (AMD) these run 1.1-1.35x faster
#: (docs/performance.md); weight gradients stay with MKL. Default from
#: ``GRIDSWEEP_ONEDNN`` (``0`` turns it off); float64, GPUs and small products always use
#: ``torch.bmm``.
ONEDNN_MATMUL: bool = os.environ.get("GRIDSWEEP_ONEDNN", "1").strip() != "0"
#: Smallest product (multiply-adds per network) sent to oneDNN; below it the per-network
#: calls cost more than they save.
ONEDNN_MIN_MACS = 1 << 27
_onednn_works: bool | None = None


def _onednn_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w.T`` for 2-D float32 CPU tensors through oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")


def _onednn_available() -> bool:
    """True when this torch build has a working oneDNN linear (probed once)."""
    global _onednn_works
    if _onednn_works is None:
        try:
            g = torch.Generator().manual_seed(0)
            x, w = torch.randn(8, 16, generator=g), torch.randn(4, 16, generator=g)
            _onednn_works = bool(torch.backends.mkldnn.is_available()
                                 and torch.allclose(_onednn_linear(x, w), x @ w.T, rtol=1e-4, atol=1e-5))
        except (RuntimeError, AttributeError, NotImplementedError):
            _onednn_works = False
    return _onednn_works


def _use_onednn(x: torch.Tensor, macs: int) -> bool:
    return (ONEDNN_MATMUL and x.device.type == "cpu" and x.dtype == torch.float32 and macs >= ONEDNN_MIN_MACS
            and _onednn_available())


def _mm_nt(a: torch.Tensor, bt: torch.Tensor) -> torch.Tensor:
    """``a @ bt^T`` per network through oneDNN: (E, M, K), (E, N, K) -> (E, M, N)."""
    outs = [_onednn_linear(a[e].contiguous(), bt[e].contiguous()) for e in range(a.shape[0])]
    return outs[0].unsqueeze(0) if len(outs) == 1 else torch.stack(outs)


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


def _bmm(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``torch.bmm(x, W)``, (E, M, K) @ (E, K, N), through oneDNN when that is faster."""
    if _use_onednn(x, x.shape[1] * x.shape[2] * W.shape[2]):
        return _OneDNNBmm.apply(x, W)
    return torch.bmm(x, W)


# --------------------------------------------------------------------------------------
# fused recurrence: the whole sequence as one autograd node with hand-written BPTT
# --------------------------------------------------------------------------------------
# Autograd through the per-step loop (the unfused path of ``hidden_time_major``) computes the gradient of
# W_hh as T separate (Ng x B) @ (B x G*Ng) products, each allocating and accumulating a
# full (Ng, G*Ng) matrix. :class:`_Recurrence` instead runs backpropagation through time
# by hand over time-major buffers (E, T, B, .), keeps the per-step pre-activations it
# needs, and forms the weight gradient once, as (Ng x T*B) @ (T*B x G*Ng): the same
# FLOPs in one large, efficient product. Its results equal the reference loop's to
# rounding (tests/test_ensemble_equivalence.py checks both values and gradients).

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
#   pre-activations (for the GRU: h @ W_hh); C (E, T, B, Ng) memory cells (LSTM).
# Backward steps write dS[:, t] = d(loss)/d S[:, t] (and dX[:, t] = d(loss)/d xw[:, t] for
# the GRU, whose input and recurrent terms enter differently) and return the gradients
# carried to h_{t-1} and c_{t-1}, excluding the W_hh^T product that the driver adds.

def _rnn_fwd(t, act, xw, h, c, W, Wt, b, H, S, C):
    out = _recur_mm(h, W, Wt, H[:, t], xw[:, t])
    return _act_inplace(act, _add_bias_(out, b)), None


def _rnn_bwd(t, act, g, gc, h_prev, c_prev, H, S, C, dS, dX):
    dS[:, t] = _act_grad(act, g, H[:, t])
    return None, None


def _lstm_fwd(t, act, xw, h, c, W, Wt, b, H, S, C):
    pre = _add_bias_(_recur_mm(h, W, Wt, S[:, t], xw[:, t]), b)
    i, f, g, o = pre.chunk(4, dim=-1)
    c = torch.add(torch.sigmoid(f) * c, torch.sigmoid(i) * ACTIVATIONS[act](g), out=C[:, t])
    return torch.mul(torch.sigmoid(o), ACTIVATIONS[act](c), out=H[:, t]), c


def _lstm_bwd(t, act, gh, gc, h_prev, c_prev, H, S, C, dS, dX):
    i, f, g, o = S[:, t].chunk(4, dim=-1)
    si, sf, so, ag = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), ACTIVATIONS[act](g)
    ac = ACTIVATIONS[act](C[:, t])
    dc = _act_grad(act, gh * so, ac)
    if gc is not None:
        dc = dc + gc
    di, df, dg, do = dS[:, t].chunk(4, dim=-1)
    di.copy_(_sig_grad(dc * ag, si))
    df.copy_(_sig_grad(dc * c_prev, sf))
    dg.copy_(_act_grad(act, dc * si, ag))
    do.copy_(_sig_grad(gh * ac, so))
    return None, dc * sf


def _gru_fwd(t, act, xw, h, c, W, Wt, b, H, S, C):
    hh = _recur_mm(h, W, Wt, S[:, t])
    x = xw[:, t] if b is None else xw[:, t] + b
    xr, xz, xn = x.chunk(3, dim=-1)
    hr, hz, hn = hh.chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = ACTIVATIONS[act](xn + r * hn)
    return torch.add((1 - z) * n, z * h, out=H[:, t]), None


def _gru_bwd(t, act, g, gc, h_prev, c_prev, H, S, C, dS, dX, xw=None, b=None):
    x = xw[:, t] if b is None else xw[:, t] + b
    xr, xz, xn = x.chunk(3, dim=-1)
    hr, hz, hn = S[:, t].chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = ACTIVATIONS[act](xn + r * hn)
    dn = _act_grad(act, g * (1 - z), n)
    dr = _sig_grad(dn * hn, r)
    dz = _sig_grad(g * (h_prev - n), z)
    xr_, xz_, xn_ = dX[:, t].chunk(3, dim=-1)
    hr_, hz_, hn_ = dS[:, t].chunk(3, dim=-1)
    xr_.copy_(dr), xz_.copy_(dz), xn_.copy_(dn)
    hr_.copy_(dr), hz_.copy_(dz), torch.mul(dn, r, out=hn_)
    return g * z, None


def _ugrnn_fwd(t, act, xw, h, c, W, Wt, b, H, S, C):
    pre = _add_bias_(_recur_mm(h, W, Wt, S[:, t], xw[:, t]), b)
    gpre, cand = pre.chunk(2, dim=-1)
    gs = torch.sigmoid(gpre)
    return torch.add(gs * h, (1 - gs) * ACTIVATIONS[act](cand), out=H[:, t]), None


def _ugrnn_bwd(t, act, g, gc, h_prev, c_prev, H, S, C, dS, dX):
    gpre, cand = S[:, t].chunk(2, dim=-1)
    gs, a = torch.sigmoid(gpre), ACTIVATIONS[act](cand)
    dgate, dcand = dS[:, t].chunk(2, dim=-1)
    dgate.copy_(_sig_grad(g * (h_prev - a), gs))
    dcand.copy_(_act_grad(act, g * (1 - gs), a))
    return g * gs, None


#: cell -> (forward step, backward step, saves pre-activations, separate input gradient)
_FUSED = {
    "rnn": (_rnn_fwd, _rnn_bwd, False, False),
    "lstm": (_lstm_fwd, _lstm_bwd, True, False),
    "gru": (_gru_fwd, _gru_bwd, True, True),
    "ugrnn": (_ugrnn_fwd, _ugrnn_bwd, True, False),
}
_FUSED_SPECS = {name: CELLS[name] for name in _FUSED}
_FUSED_ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")


def _fused_supported(cell: str, activation: str) -> bool:
    """True when the cell and activation are the built-in ones the fused kernel knows."""
    return (cell in _FUSED and CELLS.get(cell) is _FUSED_SPECS[cell] and activation in _FUSED_ACTIVATIONS
            and ACTIVATIONS.get(activation) is _BUILTIN_ACTIVATIONS[activation])


def _recurrence_forward(cell, act, xw, h0, c0, W, b):
    """Run the recurrence over time-major ``xw`` (E, T, B, G*Ng); returns H, S, C."""
    fwd, _, saves, _ = _FUSED[cell]
    E, T, B, _ = xw.shape
    Ng = W.shape[1]
    kw = dict(dtype=xw.dtype, device=xw.device)
    H = torch.empty(E, T, B, Ng, **kw)
    S = torch.empty(E, T, B, W.shape[2], **kw) if saves else None
    C = torch.empty(E, T, B, Ng, **kw) if c0 is not None else None
    Wt = W.transpose(1, 2).contiguous() if _use_onednn(W, B * Ng * W.shape[2]) else None
    h, c = h0, c0
    for t in range(T):
        h, c = fwd(t, act, xw, h, c, W, Wt, b, H, S, C)
    return H, S, C


class _Recurrence(torch.autograd.Function):
    """Time-major recurrence with hand-written backpropagation through time."""

    @staticmethod
    def forward(ctx, xw, h0, c0, W, b, cell, act):
        H, S, C = _recurrence_forward(cell, act, xw, h0, c0, W, b)
        ctx.cell, ctx.act = cell, act
        ctx.save_for_backward(xw, h0, c0, W, b, H, S, C)
        return H

    @staticmethod
    @once_differentiable
    def backward(ctx, dH):
        xw, h0, c0, W, b, H, S, C = ctx.saved_tensors
        cell, act = ctx.cell, ctx.act
        _, bwd, _, separate_x = _FUSED[cell]
        E, T, B, GN = xw.shape
        Ng = W.shape[1]
        dS = torch.empty(E, T, B, GN, dtype=xw.dtype, device=xw.device)
        dX = torch.empty_like(dS) if separate_x else dS
        extra = dict(xw=xw, b=b) if cell == "gru" else {}
        Wt = W.transpose(1, 2)
        onednn = _use_onednn(W, B * GN * Ng)
        dh = dc = None
        for t in range(T - 1, -1, -1):
            g = dH[:, t] if dh is None else dH[:, t] + dh
            h_prev = H[:, t - 1] if t > 0 else h0
            c_prev = (C[:, t - 1] if t > 0 else c0) if C is not None else None
            direct, dc = bwd(t, act, g, dc, h_prev, c_prev, H, S, C, dS, dX, **extra)
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
        return dX, dh, dc, dW, db, None, None


# --------------------------------------------------------------------------------------
# initialisation
# --------------------------------------------------------------------------------------
def _init_matrix(kind: str, fan_in: int, fan_out: int, gen: torch.Generator, dtype, blocks: int = 1) -> torch.Tensor:
    """One (fan_in, fan_out) weight matrix; ``blocks`` square gate blocks for orthogonal."""
    if kind == "glorot_uniform":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        return (2 * torch.rand(fan_in, fan_out, generator=gen, dtype=dtype) - 1) * a
    if kind == "glorot_normal":
        return torch.randn(fan_in, fan_out, generator=gen, dtype=dtype) * math.sqrt(2.0 / (fan_in + fan_out))
    if kind == "torch_default":
        a = 1.0 / math.sqrt(fan_in)
        return (2 * torch.rand(fan_in, fan_out, generator=gen, dtype=dtype) - 1) * a
    if kind == "orthogonal":
        cols = fan_out // blocks
        out = []
        for _ in range(blocks):
            g = torch.randn(max(fan_in, cols), min(fan_in, cols), generator=gen, dtype=torch.float64)
            q, r = torch.linalg.qr(g)
            q = q * torch.sign(torch.diagonal(r))
            out.append(q if fan_in >= cols else q.T)
        return torch.cat(out, dim=1).to(dtype)
    raise ConfigError(f"model.init={kind!r}: allowed {['glorot_uniform', 'glorot_normal', 'orthogonal', 'torch_default']}")


class PathIntegrator(nn.Module):
    """E recurrent path integrators of one shape, stepping together.

    Parameters (all stacked over E)
    -------------------------------
    W_enc : (E, Np, Ng)  initial hidden state from the start code, no bias
    W_enc_c : (E, Np, Ng)  initial memory cell (LSTM only)
    W_ih : (E, 2, gates*Ng)  velocity input
    W_hh : (E, Ng, gates*Ng)  the recurrent matrix (the one the L2 penalty hits)
    b : (E, 1, gates*Ng)  recurrent bias (``bias=True``)
    W_bot : (E, Ng, Nb)  linear bottleneck (``bottleneck=Nb``)
    W_dec : (E, Ng or Nb, Nout)  readout;  b_dec : (E, 1, Nout) (``bias=True``)

    Parameters
    ----------
    cell, activation : str
        Keys of :data:`CELLS` and :data:`ACTIVATIONS`.
    n_inputs_code : int
        Np, size of the start-position code fed to the encoder.
    n_outputs : int
        Readout size (Np plus any head-direction cells).
    dropout : Tensor, (E,)
        Per-network dropout rate on the readout input.
    """

    #: Run built-in cells through the fused recurrence (:class:`_Recurrence`); set False
    #: (on the class or an instance) to run the per-step cell functions under autograd.
    use_fused_recurrence: bool = True

    def __init__(self, cell: str, activation: str, hidden_size: int, n_inputs_code: int, n_outputs: int,
                 E: int, bias: bool = False, bottleneck: int | None = None,
                 dropout: torch.Tensor | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(f"model.cell={cell!r}: allowed {sorted(CELLS)}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model.activation={activation!r}: allowed {sorted(ACTIVATIONS)}")
        self.cell, self.activation = cell, activation
        self.spec = CELLS[cell]
        self.hidden_size, self.n_code, self.n_outputs, self.E = hidden_size, n_inputs_code, n_outputs, E
        self.use_bias, self.bottleneck = bias, bottleneck
        G, Ng = self.spec.gates, hidden_size
        z = lambda *s: nn.Parameter(torch.zeros(E, *s, dtype=dtype))  # noqa: E731
        self.W_enc = z(n_inputs_code, Ng)
        self.W_enc_c = z(n_inputs_code, Ng) if self.spec.has_memory else None
        self.W_ih = z(2, G * Ng)
        self.W_hh = z(Ng, G * Ng)
        self.b = z(1, G * Ng) if bias else None
        self.W_bot = z(Ng, bottleneck) if bottleneck else None
        last = bottleneck or Ng
        self.W_dec = z(last, n_outputs)
        self.b_dec = z(1, n_outputs) if bias else None
        self.register_buffer("dropout", torch.zeros(E, dtype=dtype) if dropout is None else dropout.to(dtype))

    # ----------------------------------------------------------------------------------
    def init_weights(self, seeds: Sequence[int], inits: Sequence[str]) -> "PathIntegrator":
        """Draw network e's weights from the ``"weights"`` stream of ``seeds[e]``."""
        G, Ng = self.spec.gates, self.hidden_size
        with torch.no_grad():
            for e, (seed, kind) in enumerate(zip(seeds, inits)):
                g = torch_generator(seed, "weights")
                dt = self.W_hh.dtype
                self.W_enc[e] = _init_matrix(kind, self.n_code, Ng, g, dt)
                if self.W_enc_c is not None:
                    self.W_enc_c[e] = _init_matrix(kind, self.n_code, Ng, g, dt)
                self.W_ih[e] = _init_matrix(kind, 2, G * Ng, g, dt, blocks=G)
                self.W_hh[e] = _init_matrix(kind, Ng, G * Ng, g, dt, blocks=G)
                if self.b is not None:
                    self.b[e].zero_()
                    if self.cell == "lstm":  # forget-gate bias 1 (Jozefowicz et al. 2015)
                        self.b[e, 0, Ng:2 * Ng] = 1.0
                if self.W_bot is not None:
                    self.W_bot[e] = _init_matrix(kind, Ng, self.bottleneck, g, dt)
                self.W_dec[e] = _init_matrix(kind, self.W_dec.shape[1], self.n_outputs, g, dt)
                if self.b_dec is not None:
                    self.b_dec[e].zero_()
        return self

    def recurrent_weights(self) -> list[nn.Parameter]:
        """The recurrent matrices, whatever the cell: the target of the L2 penalty."""
        return [self.W_hh]

    def recurrent_penalty(self) -> torch.Tensor:
        """``sum(W_hh ** 2)`` per network, (E,)."""
        return sum(w.pow(2).sum(dim=tuple(range(1, w.ndim))) for w in self.recurrent_weights())

    # ----------------------------------------------------------------------------------
    def initial_state(self, code0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """h0 (and c0) from the start code, (E, B, Np) -> (E, B, Ng)."""
        h0 = _bmm(code0, self.W_enc)
        c0 = _bmm(code0, self.W_enc_c) if self.W_enc_c is not None else None
        return h0, c0

    def hidden(self, velocities: torch.Tensor, code0: torch.Tensor) -> torch.Tensor:
        """Hidden states for every step.

        Parameters
        ----------
        velocities : Tensor, (E, B, T, 2)
        code0 : Tensor, (E, B, Np)  target code at the start position

        Returns
        -------
        Tensor, (E, B, T, Ng)
            A transposed view of :meth:`hidden_time_major` (not contiguous).
        """
        return self.hidden_time_major(velocities, code0).transpose(1, 2)

    def hidden_time_major(self, velocities: torch.Tensor, code0: torch.Tensor) -> torch.Tensor:
        """Hidden states, time-major and contiguous: (E, B, T, 2), (E, B, Np) -> (E, T, B, Ng).

        Built-in cells and activations run as one fused autograd node (hand-written
        backpropagation through time, one weight-gradient product); anything else, or
        ``use_fused_recurrence = False``, runs the per-step cell functions of :data:`CELLS`
        under autograd. Both give the same numbers up to rounding.
        """
        E, B, T, _ = velocities.shape
        v = velocities.transpose(1, 2).reshape(E, T * B, 2)
        xw = torch.bmm(v, self.W_ih).reshape(E, T, B, -1)
        h0, c0 = self.initial_state(code0)
        if self.use_fused_recurrence and _fused_supported(self.cell, self.activation):
            return _Recurrence.apply(xw, h0, c0, self.W_hh, self.b, self.cell, self.activation)
        act = ACTIVATIONS[self.activation]
        h, c = h0, c0
        states = []
        for x_t in xw.unbind(1):
            h, c = self.spec.step(x_t, h, c, self.W_hh, self.b, act)
            states.append(h)
        return torch.stack(states, dim=1)

    def readout(self, hidden: torch.Tensor, dropout_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs from hidden states, (E, ..., Ng) -> (E, ..., Nout), e.g. (E, B, T, Ng).

        ``dropout_mask`` (same shape as ``hidden``) of 0/1 is applied with inverted
        scaling by the per-network keep probability; pass None in evaluation. A transposed
        time-major input (what :meth:`hidden` returns) is read without a copy and the
        output is the matching transposed view.
        """
        if hidden.ndim == 4 and not hidden.is_contiguous() and hidden.transpose(1, 2).is_contiguous():
            mask = None if dropout_mask is None else dropout_mask.transpose(1, 2)
            return self.readout(hidden.transpose(1, 2), mask).transpose(1, 2)
        E = hidden.shape[0]
        x = hidden
        if dropout_mask is not None:
            keep = (1 - self.dropout).reshape(E, *([1] * (x.ndim - 1)))
            x = x * dropout_mask / keep
        flat = x.reshape(E, -1, x.shape[-1])
        if self.W_bot is not None:
            flat = _bmm(flat, self.W_bot)
        out = _bmm(flat, self.W_dec)
        if self.b_dec is not None:
            out = out + self.b_dec
        return out.reshape(*hidden.shape[:-1], self.n_outputs)

    def forward(self, velocities: torch.Tensor, code0: torch.Tensor,
                dropout_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass: ``(outputs (E, B, T, Nout), hidden (E, B, T, Ng))``."""
        hidden = self.hidden(velocities, code0)
        return self.readout(hidden, dropout_mask), hidden

    # ----------------------------------------------------------------------------------
    def select(self, index: int | Sequence[int]) -> "PathIntegrator":
        """A new module holding copies of networks ``index`` (an int gives E = 1)."""
        idx = [index] if isinstance(index, int) else list(index)
        new = PathIntegrator(self.cell, self.activation, self.hidden_size, self.n_code, self.n_outputs,
                             len(idx), self.use_bias, self.bottleneck, self.dropout[idx].clone(), self.W_hh.dtype)
        new.load_state_dict({k: v[idx].clone() for k, v in self.state_dict().items()})
        return new.to(self.W_hh.device)

    @staticmethod
    def stack(models: Sequence["PathIntegrator"]) -> "PathIntegrator":
        """Concatenate networks of one shape into one ensemble."""
        m0 = models[0]
        new = PathIntegrator(m0.cell, m0.activation, m0.hidden_size, m0.n_code, m0.n_outputs,
                             sum(m.E for m in models), m0.use_bias, m0.bottleneck,
                             torch.cat([m.dropout for m in models]), m0.W_hh.dtype)
        new.load_state_dict({k: torch.cat([m.state_dict()[k] for m in models]) for k in m0.state_dict()})
        return new.to(m0.W_hh.device)


def build_model(cfgs: ModelConfig | Sequence[ModelConfig], n_code: int, n_outputs: int, seeds: int | Sequence[int],
                *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> PathIntegrator:
    """Build and initialise E networks.

    Parameters
    ----------
    cfgs : ModelConfig or sequence of E ModelConfig
        Shape fields (cell, activation, hidden_size, bias, bottleneck) must agree; init and
        dropout may differ per network.
    n_code : int
        Np, size of the target code that sets the initial state.
    n_outputs : int
        Readout size.
    seeds : int or sequence of E ints
        Run seeds (weights come from their ``"weights"`` streams).
    """
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    cfgs = [cfgs] * len(seeds) if isinstance(cfgs, ModelConfig) else list(cfgs)
    shape = {(c.cell, c.activation, c.hidden_size, c.bias, c.bottleneck) for c in cfgs}
    if len(shape) != 1:
        raise ConfigError(f"an ensemble needs one model shape (cell, activation, hidden_size, bias, bottleneck); got {sorted(map(str, shape))}")
    c0 = cfgs[0]
    dropout = torch.tensor([c.dropout for c in cfgs], dtype=dtype)
    model = PathIntegrator(c0.cell, c0.activation, c0.hidden_size, n_code, n_outputs, len(seeds),
                           c0.bias, c0.bottleneck, dropout, dtype)
    model.init_weights(seeds, [c.init for c in cfgs])
    return model.to(device)
