"""Recurrent path integrators with a leading ensemble axis.

Structure (Sorscher et al., docs/science.md section 3): the initial hidden state is a
linear map of the target code at the start position; a recurrent core driven by the
velocity input; a linear readout to the targets. ``family`` (``ModelConfig.family``)
chooses whose architecture surrounds the cell:

``bare`` (gridsweep's own)
    h0 = code0 W_enc (no bias; c0 = code0 W_enc_c for the LSTM); the cell reads the
    velocity directly; optional recurrent bias ``b`` (``bias``), linear bottleneck
    (Banino et al. 2018) and readout dropout; readout W_dec (+ b_dec with ``bias``).
    The scored units are the cell's outputs.
``nfl`` (Schaeffer, Khona & Fiete 2022, mec_hpc_investigations/models/model.py at d9edec2)
    RNN (model.py:101-122): Dense encoder, SimpleRNN and Dense decoder, all without
    bias. LSTM (model.py:217-266), GRU and UGRNN (``ThreeLayerRNNBase``, model.py:427-462,
    497-533): biased Dense encoder(s); a biased Dense layer ``M`` (W_M, b_M) on the
    velocity whose output drives the cell; a biased Keras cell; a post-RNN
    ``Dense(Ng, activation)`` (W_dense, b_dense) whose outputs are the units NFL scores
    and reads out; a biased decoder. Keras initialisers; ``init`` sets only the
    recurrent kernel. Keras dropout (``input_dropout``, ``recurrent_dropout``).
    ``srnn`` is NFL's VanillaRNN (model.py:511-521; rnn_type SRNN or VanillaRNN,
    utils.py:928-929): the ``rnn`` step (a Keras SimpleRNN without bias) inside that
    three-layer layout (biased encoder, M, post-RNN dense and decoder); nfl only.
``sorscher`` (Sorscher et al., grid-pattern-formation model.py:13-20)
    ``torch.nn.RNN(relu or tanh, bias=False)`` between ``nn.Linear`` encoder and decoder
    without bias, all with torch's default initialisation.

Every parameter is stacked over ``E`` networks (shape ``(E, ...)``) and every operation
is a batched matrix product, so E networks of the same shape step together as one
computation while staying mathematically independent: network e's outputs and
gradients depend on slice e alone. A single network is E = 1.

:data:`CELLS` holds the one definition of every cell, one time step, read by autograd.
:mod:`gridsweep.fastpath` holds a fused kernel for the built-in cells that gives the same
numbers faster (checked against these steps in tests/test_models_parity.py and
tests/test_ensemble_equivalence.py); a cell without one runs its step here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from gridsweep import fastpath
from gridsweep.config import ModelConfig
from gridsweep.errors import ConfigError
from gridsweep.seeding import torch_generator

__all__ = ["PathIntegrator", "build_model", "CELLS", "ACTIVATIONS", "CellSpec", "Recurrent", "RecurrentMasks",
           "keras_dropout_layout", "n_parameters", "FAMILIES"]

FAMILIES = ("bare", "nfl", "sorscher")

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "linear": lambda x: x,
}
_BUILTIN_ACTIVATIONS = dict(ACTIVATIONS)

_bmm = fastpath.bmm  # torch.bmm, through oneDNN for large float32 CPU products


# --------------------------------------------------------------------------------------
# cells: one time step each
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recurrent:
    """What a cell step reads besides its input projection and state.

    W_hh : (E, Ng, G*Ng)  recurrent matrix, G gate blocks side by side
    b : (E, 1, G*Ng) or None  bias added with the input projection
    b_hh : (E, 1, G*Ng) or None  recurrent-side bias (Keras GRU ``reset_after=True``:
        the candidate's block is multiplied by the reset gate); None elsewhere
    gate_offset : float  constant added to the UGRNN gate pre-activation (NFL: 1)
    h_mask : (E, K, B, Ng) or None  recurrent dropout masks (Keras scaling 0 or
        1/keep), K = 1 (one for all gates) or G (one per gate block)
    """

    W_hh: torch.Tensor
    b: torch.Tensor | None = None
    b_hh: torch.Tensor | None = None
    gate_offset: float = 0.0
    h_mask: torch.Tensor | None = None


def _recurrent_product(h: torch.Tensor, p: Recurrent) -> torch.Tensor:
    """``h @ W_hh`` (E, B, G*Ng), each gate block from h times its own dropout mask if any."""
    if p.h_mask is None:
        return torch.bmm(h, p.W_hh)
    K = p.h_mask.shape[1]
    blocks = p.W_hh.chunk(K, dim=-1)
    return torch.cat([torch.bmm(h * p.h_mask[:, k], blocks[k]) for k in range(K)], dim=-1)


def _plus(x: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return x if b is None else x + b


def _need(p: nn.Parameter | None, name: str, why: str) -> nn.Parameter:
    """``p``, which the model's layout guarantees here; a ConfigError (not a None crash) if absent."""
    if p is None:
        raise ConfigError(f"PathIntegrator.{name} is None but {why} needs it")
    return p


def _rnn_step(xw, h, c, p: Recurrent, act):
    """h' = act(x W_ih + h W_hh + b)."""
    return act(_plus(xw + _recurrent_product(h, p), p.b)), None


def _lstm_step(xw, h, c, p: Recurrent, act):
    """Gate blocks i, f, g, o (torch and Keras order): c' = s(f) c + s(i) act(g); h' = s(o) act(c')."""
    pre = _plus(xw + _recurrent_product(h, p), p.b)
    i, f, g, o = pre.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * act(g)
    return torch.sigmoid(o) * act(c), c


def _gru_step(xw, h, c, p: Recurrent, act):
    """Gate blocks r, z, n (torch order; Keras's z, r, h are a block permutation of these).

    r = s(x_r + h_r), z = s(x_z + h_z), n = act(x_n + r * h_n), h' = (1 - z) n + z h, with
    x = x W_ih + b and h_. = h W_hh + b_hh (reset applied after the product: torch, and
    Keras ``reset_after=True``).
    """
    x = _plus(xw, p.b)
    hh = _plus(_recurrent_product(h, p), p.b_hh)
    xr, xz, xn = x.chunk(3, dim=-1)
    hr, hz, hn = hh.chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = act(xn + r * hn)
    return (1 - z) * n + z * h, None


def _ugrnn_step(xw, h, c, p: Recurrent, act):
    """Update-gate RNN (Collins, Sohl-Dickstein & Sussillo 2017), blocks gate, candidate.

    u = s(pre_gate + gate_offset), h' = u h + (1 - u) act(pre_candidate).
    """
    pre = _plus(xw + _recurrent_product(h, p), p.b)
    g, cand = pre.chunk(2, dim=-1)
    u = torch.sigmoid(g + p.gate_offset) if p.gate_offset else torch.sigmoid(g)
    return u * h + (1 - u) * act(cand), None


@dataclass(frozen=True)
class CellSpec:
    """A recurrent cell: ``gates`` blocks of Ng pre-activations and a step function.

    ``step(xw, h, c, p, act) -> (h, c)`` with xw (E, B, gates*Ng) the input projection,
    h and c (E, B, Ng) (c is None for cells without a memory cell) and p a
    :class:`Recurrent`. ``kernel``: the :data:`gridsweep.fastpath.FUSED` kernel that
    computes ``step`` (None: the step runs under autograd). ``recurrent_bias``: False
    when the original's recurrent layer never has a bias. ``families``: the model
    families whose original has this cell.
    """

    gates: int
    has_memory: bool
    step: Callable
    kernel: str | None = None
    recurrent_bias: bool = True
    families: tuple[str, ...] = FAMILIES


#: cell name -> CellSpec. For gated cells ``activation`` replaces the candidate (and, for
#: the LSTM, the cell-output) nonlinearity, as in Keras; gates use the logistic sigmoid.
#: ``srnn`` (NFL's VanillaRNN) is the ``rnn`` step; what differs is the layout around it
#: (:class:`PathIntegrator`, family nfl): SimpleRNN(use_bias=False), model.py:514-521.
CELLS: dict[str, CellSpec] = {
    "rnn": CellSpec(1, False, _rnn_step, kernel="rnn"),
    "lstm": CellSpec(4, True, _lstm_step, kernel="lstm"),
    "gru": CellSpec(3, False, _gru_step, kernel="gru"),
    "ugrnn": CellSpec(2, False, _ugrnn_step, kernel="ugrnn"),
    "srnn": CellSpec(1, False, _rnn_step, kernel="rnn", recurrent_bias=False, families=("nfl",)),
}
_BUILTIN_CELLS = dict(CELLS)


# --------------------------------------------------------------------------------------
# Keras dropout inside the recurrent layer (family nfl)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecurrentMasks:
    """Dropout masks of one forward pass, values 0 or 1/keep (Keras's scaling).

    inputs : (E, K, Tm, B, D) or None  on the recurrent layer's input (Keras ``dropout``);
        K = 1 or G gate blocks, Tm = 1 (one mask per sequence) or T (one per step)
    hidden : (E, K, B, Ng) or None  on h_{t-1} in the recurrent product (Keras
        ``recurrent_dropout``), one mask per sequence
    """

    inputs: torch.Tensor | None
    hidden: torch.Tensor | None


def keras_dropout_layout(cell: str, activation: str, recurrent_rate: float) -> tuple[int, bool, int]:
    """How Keras (tf-keras, ``training=True``) lays out its RNN dropout masks.

    Returns ``(K_in, per_step, K_rec)``: the number of input masks (one per gate block or
    one shared), whether the input mask is redrawn at every time step, and the number of
    recurrent masks.

    Notes
    -----
    tf-keras at dd0a7237b (the code of TF 2.8's Keras that NFL pinned):
    SimpleRNNCell (layers/rnn/simple_rnn.py:194-208) uses one input and one recurrent
    mask, cached for the whole sequence. LSTMCell and GRUCell switch to
    ``implementation=1`` when ``recurrent_dropout > 0`` (lstm.py:178-183, gru.py:174-179)
    and then draw one input and one recurrent mask per gate (lstm.py:284-322,
    gru.py:242-272); with ``implementation=2`` one input mask serves all gates
    (lstm.py:325-326, gru.py:309). When the layer could run cuDNN (activation tanh,
    sigmoid gates, no recurrent dropout, biases: lstm.py:578-585, gru.py:604-611, which
    NFL's LSTM and GRU satisfy with activation tanh, whether or not a GPU is present)
    the input mask is drawn for the whole (B, T, D) sequence (lstm.py:649-654,
    gru.py:822-825), so it differs at every step.
    NFL's RNN and VanillaRNN (``rnn``, ``srnn``) are both SimpleRNN layers.
    """
    if cell in ("rnn", "srnn"):
        return 1, False, 1
    gates = CELLS[cell].gates
    if recurrent_rate > 0:
        return gates, False, gates
    return 1, activation == "tanh", 1


# --------------------------------------------------------------------------------------
# initialisation
# --------------------------------------------------------------------------------------
def _uniform(rows: int, cols: int, bound: float, gen: torch.Generator, dtype) -> torch.Tensor:
    return (2 * torch.rand(rows, cols, generator=gen, dtype=dtype) - 1) * bound


def _qr_orthogonal(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    """A (rows, cols) matrix with orthonormal rows or columns (Keras/torch algorithm, float64)."""
    g = torch.randn(max(rows, cols), min(rows, cols), generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r))
    return q if rows >= cols else q.T


def _init_matrix(kind: str, fan_in: int, fan_out: int, gen: torch.Generator, dtype, blocks: int = 1,
                 torch_fan_in: int | None = None) -> torch.Tensor:
    """One (fan_in, fan_out) weight matrix of the bare family.

    ``blocks`` square gate blocks for orthogonal; ``torch_fan_in`` the fan-in of torch's
    default bound 1/sqrt(fan) when it is not ``fan_in`` (torch.nn.RNN/LSTM/GRU draw every
    matrix from U(-1/sqrt(Ng), 1/sqrt(Ng))).
    """
    if kind == "glorot_uniform":
        return _uniform(fan_in, fan_out, math.sqrt(6.0 / (fan_in + fan_out)), gen, dtype)
    if kind == "glorot_normal":
        return torch.randn(fan_in, fan_out, generator=gen, dtype=dtype) * math.sqrt(2.0 / (fan_in + fan_out))
    if kind == "torch_default":
        return _uniform(fan_in, fan_out, 1.0 / math.sqrt(torch_fan_in or fan_in), gen, dtype)
    if kind == "orthogonal":
        cols = fan_out // blocks
        return torch.cat([_qr_orthogonal(fan_in, cols, gen) for _ in range(blocks)], dim=1).to(dtype)
    raise ConfigError(f"model.init={kind!r}: allowed {['glorot_uniform', 'glorot_normal', 'orthogonal', 'torch_default']}")


#: Keras's truncated-normal correction: the std of a unit normal truncated at +-2.
_KERAS_TRUNC_STD = 0.87962566103423978


def _keras_init(kind: str, rows: int, cols: int, gen: torch.Generator, dtype) -> torch.Tensor:
    """A (rows, cols) Keras kernel: ``glorot_uniform``, ``glorot_normal`` or ``orthogonal``.

    Notes
    -----
    Keras (tf-keras initializers): GlorotUniform U(+-sqrt(6 / (rows + cols))); GlorotNormal
    a normal truncated at two standard deviations with std sqrt(2 / (rows + cols)) / 0.8796;
    Orthogonal a QR of a (max, min) normal matrix over the WHOLE kernel (for a recurrent
    kernel (Ng, G*Ng): orthonormal rows across all gate blocks), sign-corrected, gain 1.
    """
    if kind == "glorot_uniform":
        return _uniform(rows, cols, math.sqrt(6.0 / (rows + cols)), gen, dtype)
    if kind == "glorot_normal":
        std = math.sqrt(2.0 / (rows + cols)) / _KERAS_TRUNC_STD
        out = torch.empty(rows, cols, dtype=torch.float64)
        return nn.init.trunc_normal_(out, 0.0, std, -2 * std, 2 * std, generator=gen).to(dtype)
    if kind == "orthogonal":
        return _qr_orthogonal(rows, cols, gen).to(dtype)
    raise ConfigError(f"model.init={kind!r} with model.family='nfl': allowed glorot_uniform, glorot_normal, orthogonal")


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
class PathIntegrator(nn.Module):
    """E recurrent path integrators of one shape, stepping together.

    Parameters (all stacked over E; None where the family/cell has none)
    ------------------------------------------------------------------
    W_enc : (E, Np, Ng), b_enc : (E, 1, Ng)  initial hidden state from the start code
    W_enc_c : (E, Np, Ng), b_enc_c : (E, 1, Ng)  initial memory cell (LSTM only)
    W_M : (E, 2, Ng), b_M : (E, 1, Ng)  NFL's Dense ``M`` on the velocity (nfl three-layer cells:
        lstm, gru, ugrnn, srnn)
    W_ih : (E, 2 or Ng, G*Ng)  input kernel (its input is the velocity, or M's output)
    W_hh : (E, Ng, G*Ng)  the recurrent matrix
    b : (E, 1, G*Ng)  recurrent-layer bias (bare with ``bias=True``; nfl gated cells; never srnn)
    b_hh : (E, 1, 3*Ng)  Keras GRU recurrent bias (nfl GRU)
    W_bot : (E, Ng, Nb)  linear bottleneck (bare, ``bottleneck=Nb``)
    W_dense : (E, Ng, Ng), b_dense : (E, 1, Ng)  NFL's post-RNN Dense(Ng, activation)
    W_dec : (E, Ng or Nb, Nout);  b_dec : (E, 1, Nout)  readout

    Parameters
    ----------
    cell, activation : str
        Keys of :data:`CELLS` and :data:`ACTIVATIONS`.
    n_inputs_code : int
        Np, size of the start-position code fed to the encoder.
    n_outputs : int
        Readout size (Np plus any head-direction cells).
    dropout : Tensor, (E,)
        Per-network dropout rate on the readout input (bare family).
    family : {"bare", "nfl", "sorscher"}
    input_dropout, recurrent_dropout : float
        Keras dropout rates inside the recurrent layer (nfl family), shared by the E networks.
    """

    #: Run built-in cells through :func:`gridsweep.fastpath.fused_recurrence`; set False
    #: (on the class or an instance) to run the per-step cell functions under autograd.
    use_fused_recurrence: bool = True
    #: Per-network readout dropout rate, (E,); a registered buffer.
    dropout: torch.Tensor

    def __init__(self, cell: str, activation: str, hidden_size: int, n_inputs_code: int, n_outputs: int,
                 E: int, bias: bool = False, bottleneck: int | None = None,
                 dropout: torch.Tensor | None = None, dtype: torch.dtype = torch.float32, *,
                 family: str = "bare", input_dropout: float = 0.0, recurrent_dropout: float = 0.0):
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(f"model.cell={cell!r}: allowed {sorted(CELLS)}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"model.activation={activation!r}: allowed {sorted(ACTIVATIONS)}")
        if family not in FAMILIES:
            raise ConfigError(f"model.family={family!r}: allowed {list(FAMILIES)}")
        if family not in CELLS[cell].families:
            raise ConfigError(f"model.cell={cell!r} with model.family={family!r}: allowed families "
                              f"{list(CELLS[cell].families)}")
        three_layer = family == "nfl" and cell != "rnn"  # NFL's LSTM / ThreeLayerRNNBase layout
        if family == "nfl" and bool(bias) != three_layer:
            raise ConfigError(f"model.family='nfl' with model.cell={cell!r} needs model.bias={three_layer}")
        self.cell, self.activation, self.family = cell, activation, family
        self.spec = CELLS[cell]
        self.hidden_size, self.n_code, self.n_outputs, self.E = hidden_size, n_inputs_code, n_outputs, E
        self.use_bias, self.bottleneck = bias, bottleneck
        self.input_dropout, self.recurrent_dropout = float(input_dropout), float(recurrent_dropout)
        self.gate_offset = 1.0 if (family == "nfl" and cell == "ugrnn") else 0.0
        G, Ng = self.spec.gates, hidden_size
        z = lambda *s: nn.Parameter(torch.zeros(E, *s, dtype=dtype))  # noqa: E731
        self.W_enc = z(n_inputs_code, Ng)
        self.b_enc = z(1, Ng) if three_layer else None
        self.W_enc_c = z(n_inputs_code, Ng) if self.spec.has_memory else None
        self.b_enc_c = z(1, Ng) if three_layer and self.spec.has_memory else None
        self.W_M = z(2, Ng) if three_layer else None
        self.b_M = z(1, Ng) if three_layer else None
        self.W_ih = z(Ng if three_layer else 2, G * Ng)
        self.W_hh = z(Ng, G * Ng)
        self.b = z(1, G * Ng) if bias and self.spec.recurrent_bias else None
        self.b_hh = z(1, G * Ng) if three_layer and cell == "gru" else None
        self.W_bot = z(Ng, bottleneck) if bottleneck else None
        self.W_dense = z(Ng, Ng) if three_layer else None
        self.b_dense = z(1, Ng) if three_layer else None
        self.W_dec = z(bottleneck or Ng, n_outputs)
        self.b_dec = z(1, n_outputs) if bias else None
        self.register_buffer("dropout", torch.zeros(E, dtype=dtype) if dropout is None else dropout.to(dtype))

    # ----------------------------------------------------------------------------------
    def init_weights(self, seeds: Sequence[int], inits: Sequence[str]) -> "PathIntegrator":
        """Draw network e's weights from the ``"weights"`` stream of ``seeds[e]``."""
        with torch.no_grad():
            for e, (seed, kind) in enumerate(zip(seeds, inits)):
                g = torch_generator(seed, "weights")
                if self.family == "nfl":
                    self._init_keras(e, kind, g)
                else:
                    self._init_bare(e, kind, g)
        return self

    def _init_bare(self, e: int, kind: str, g: torch.Generator) -> None:
        """Bare and sorscher families: every matrix from ``kind``; biases zero (LSTM forget bias 1).

        ``torch_default`` is what torch does: nn.Linear U(+-1/sqrt(fan_in)) for encoder,
        bottleneck and decoder; nn.RNN/LSTM/GRU U(+-1/sqrt(Ng)) for W_ih and W_hh.
        """
        G, Ng, dt = self.spec.gates, self.hidden_size, self.W_hh.dtype
        self.W_enc[e] = _init_matrix(kind, self.n_code, Ng, g, dt)
        if self.W_enc_c is not None:
            self.W_enc_c[e] = _init_matrix(kind, self.n_code, Ng, g, dt)
        self.W_ih[e] = _init_matrix(kind, 2, G * Ng, g, dt, blocks=G, torch_fan_in=Ng)
        self.W_hh[e] = _init_matrix(kind, Ng, G * Ng, g, dt, blocks=G)
        if self.b is not None:
            self.b[e].zero_()
            if self.cell == "lstm":  # forget-gate bias 1 (Jozefowicz et al. 2015)
                self.b[e, 0, Ng:2 * Ng] = 1.0
        if self.W_bot is not None:
            self.W_bot[e] = _init_matrix(kind, Ng, self.W_bot.shape[2], g, dt)  # shape[2] == bottleneck
        self.W_dec[e] = _init_matrix(kind, self.W_dec.shape[1], self.n_outputs, g, dt)
        if self.b_dec is not None:
            self.b_dec[e].zero_()

    def _init_keras(self, e: int, kind: str, g: torch.Generator) -> None:
        """NFL family: Keras defaults (Dense and cell kernels glorot_uniform, biases zero,
        LSTM unit_forget_bias) with the recurrent kernel from ``kind``.

        NFL's UGRNN cell (model.py:73-82) draws its whole (2Ng, 2Ng) matrix, input rows
        then recurrent rows, glorot_uniform, whatever NFL's ``initializer``.
        """
        G, Ng, dt = self.spec.gates, self.hidden_size, self.W_hh.dtype
        gu = "glorot_uniform"
        self.W_enc[e] = _keras_init(gu, self.n_code, Ng, g, dt)
        if self.W_enc_c is not None:
            self.W_enc_c[e] = _keras_init(gu, self.n_code, Ng, g, dt)
        if self.W_M is not None:
            self.W_M[e] = _keras_init(gu, 2, Ng, g, dt)
        if self.cell == "ugrnn":
            whole = _keras_init(gu, 2 * Ng, 2 * Ng, g, dt)
            self.W_ih[e], self.W_hh[e] = whole[:Ng], whole[Ng:]
        else:
            self.W_ih[e] = _keras_init(gu, self.W_ih.shape[1], G * Ng, g, dt)
            self.W_hh[e] = _keras_init(kind, Ng, G * Ng, g, dt)
        for p in (self.b_enc, self.b_enc_c, self.b_M, self.b, self.b_hh, self.b_dense, self.b_dec):
            if p is not None:
                p[e].zero_()
        if self.cell == "lstm":  # Keras unit_forget_bias=True
            _need(self.b, "b", "nfl lstm's unit_forget_bias")[e, 0, Ng:2 * Ng] = 1.0
        if self.W_dense is not None:
            self.W_dense[e] = _keras_init(gu, Ng, Ng, g, dt)
        self.W_dec[e] = _keras_init(gu, self.W_dec.shape[1], self.n_outputs, g, dt)

    def recurrent_weights(self) -> list[nn.Parameter]:
        """The recurrent matrix W_hh, whatever the cell (for weight statistics)."""
        return [self.W_hh]

    def penalised_weights(self) -> list[nn.Parameter]:
        """The tensors the original's L2 penalty hits.

        bare and sorscher (Sorscher model.py:73): W_hh. nfl: ``self.RNN.weights[1]``
        (NFL model.py:185, 291, 482): the recurrent kernel of SimpleRNN (RNN and
        VanillaRNN, whose SimpleRNN weights are [kernel, recurrent_kernel] without bias,
        model.py:113-120, 514-521), LSTM and GRU, but the bias of NFL's UGRNN cell, whose
        weights are [weight, bias] (model.py:75-82).
        """
        if self.family == "nfl" and self.cell == "ugrnn":
            return [_need(self.b, "b", "nfl ugrnn's L2 penalty")]
        return [self.W_hh]

    def recurrent_penalty(self) -> torch.Tensor:
        """Sum of squares of :meth:`penalised_weights` per network, (E,)."""
        ws = self.penalised_weights()
        total = ws[0].pow(2).sum(dim=tuple(range(1, ws[0].ndim)))
        for w in ws[1:]:
            total = total + w.pow(2).sum(dim=tuple(range(1, w.ndim)))
        return total

    # ----------------------------------------------------------------------------------
    def sample_dropout_masks(self, gens: Sequence[torch.Generator], batch: int, steps: int) -> RecurrentMasks | None:
        """Keras dropout masks for one training pass, network e's from ``gens[e]``.

        Returns None when ``input_dropout`` and ``recurrent_dropout`` are both 0 (and
        then draws nothing). Layout from :func:`keras_dropout_layout`.
        """
        rin, rrec = self.input_dropout, self.recurrent_dropout
        if rin <= 0 and rrec <= 0:
            return None
        k_in, per_step, k_rec = keras_dropout_layout(self.cell, self.activation, rrec)
        dt, dev = self.W_hh.dtype, self.W_hh.device
        D, Ng = self.W_ih.shape[1], self.hidden_size

        def draw(g, shape, rate):
            keep = 1.0 - rate
            return (torch.rand(shape, generator=g, device=dev, dtype=dt) < keep).to(dt) / keep

        ins, recs = [], []
        for g in gens:
            if rin > 0:
                ins.append(draw(g, (k_in, steps if per_step else 1, batch, D), rin))
            if rrec > 0:
                recs.append(draw(g, (k_rec, batch, Ng), rrec))
        return RecurrentMasks(torch.stack(ins) if ins else None, torch.stack(recs) if recs else None)

    def initial_state(self, code0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """h0 (and c0) from the start code, (E, B, Np) -> (E, B, Ng)."""
        h0 = _plus(_bmm(code0, self.W_enc), self.b_enc)
        c0 = _plus(_bmm(code0, self.W_enc_c), self.b_enc_c) if self.W_enc_c is not None else None
        return h0, c0

    def hidden(self, velocities: torch.Tensor, code0: torch.Tensor,
               masks: RecurrentMasks | None = None) -> torch.Tensor:
        """The scored units at every step.

        Parameters
        ----------
        velocities : Tensor, (E, B, T, 2)
        code0 : Tensor, (E, B, Np)  target code at the start position
        masks : RecurrentMasks, optional  (training only)

        Returns
        -------
        Tensor, (E, B, T, Ng)
            The cell's outputs, or for NFL's three-layer models (lstm, gru, ugrnn, srnn)
            the post-RNN dense layer's. A transposed view of :meth:`hidden_time_major`
            (not contiguous).
        """
        return self.hidden_time_major(velocities, code0, masks).transpose(1, 2)

    def _input_projection(self, x: torch.Tensor, in_mask: torch.Tensor | None) -> torch.Tensor:
        """(E, T, B, D) -> (E, T, B, G*Ng); gate block k reads x times input mask k."""
        E, T, B, D = x.shape
        if in_mask is None:
            return torch.bmm(x.reshape(E, T * B, D), self.W_ih).reshape(E, T, B, -1)
        K = in_mask.shape[1]
        blocks = self.W_ih.chunk(K, dim=-1)
        return torch.cat([torch.bmm((x * in_mask[:, k]).reshape(E, T * B, D), blocks[k]).reshape(E, T, B, -1)
                          for k in range(K)], dim=-1)

    def _fused_ok(self, rec: Recurrent) -> bool:
        return (self.use_fused_recurrence and rec.h_mask is None and self.spec.kernel is not None
                and CELLS.get(self.cell) is _BUILTIN_CELLS.get(self.cell)
                and ACTIVATIONS.get(self.activation) is _BUILTIN_ACTIVATIONS.get(self.activation)
                and fastpath.fused_supported(self.spec.kernel, self.activation, rec.b_hh, rec.gate_offset))

    def hidden_time_major(self, velocities: torch.Tensor, code0: torch.Tensor,
                          masks: RecurrentMasks | None = None) -> torch.Tensor:
        """Scored units, time-major and contiguous: (E, B, T, 2), (E, B, Np) -> (E, T, B, Ng).

        Built-in cells and activations without recurrent dropout run as one fused autograd
        node (:mod:`gridsweep.fastpath`); anything else, or ``use_fused_recurrence =
        False``, runs the per-step cell functions of :data:`CELLS` under autograd. Both
        give the same numbers up to rounding.
        """
        E, B, T, _ = velocities.shape
        v = velocities.transpose(1, 2).reshape(E, T * B, 2)
        x = v if self.W_M is None else torch.baddbmm(_need(self.b_M, "b_M", "W_M"), v, self.W_M)
        xw = self._input_projection(x.reshape(E, T, B, -1), None if masks is None else masks.inputs)
        h0, c0 = self.initial_state(code0)
        rec = Recurrent(self.W_hh, self.b, self.b_hh, self.gate_offset, None if masks is None else masks.hidden)
        kernel = self.spec.kernel
        if kernel is not None and self._fused_ok(rec):  # _fused_ok also checks the kernel
            H = fastpath.fused_recurrence(kernel, self.activation, xw, h0, c0, self.W_hh, self.b, self.b_hh,
                                          self.gate_offset)
        else:
            act, step = ACTIVATIONS[self.activation], self.spec.step
            h, c = h0, c0
            states = []
            for x_t in xw.unbind(1):
                h, c = step(x_t, h, c, rec, act)
                states.append(h)
            H = torch.stack(states, dim=1)
        if self.W_dense is None:
            return H
        Ng = self.hidden_size
        dense = torch.baddbmm(_need(self.b_dense, "b_dense", "W_dense"), H.reshape(E, T * B, Ng), self.W_dense)
        return ACTIVATIONS[self.activation](dense).reshape(E, T, B, Ng)

    def readout(self, hidden: torch.Tensor, dropout_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs from scored units, (E, ..., Ng) -> (E, ..., Nout), e.g. (E, B, T, Ng).

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

    def forward(self, velocities: torch.Tensor, code0: torch.Tensor, dropout_mask: torch.Tensor | None = None,
                masks: RecurrentMasks | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass: ``(outputs (E, B, T, Nout), scored units (E, B, T, Ng))``."""
        hidden = self.hidden(velocities, code0, masks)
        return self.readout(hidden, dropout_mask), hidden


def n_parameters(m: ModelConfig, n_code: int, n_outputs: int) -> int:
    """Number of parameters of one network built from ``m`` (what :class:`PathIntegrator` allocates)."""
    spec = CELLS[m.cell]
    G, Ng, k = spec.gates, m.hidden_size, (2 if spec.has_memory else 1)
    three_layer = m.family == "nfl" and m.cell != "rnn"
    n = k * n_code * Ng + (Ng if three_layer else 2) * G * Ng + Ng * G * Ng
    n += G * Ng if m.uses_bias and spec.recurrent_bias else 0
    if three_layer:  # encoder biases, M layer, GRU recurrent bias, post-RNN dense
        n += k * Ng + 3 * Ng + (G * Ng if m.cell == "gru" else 0) + Ng * Ng + Ng
    n += Ng * m.bottleneck if m.bottleneck else 0
    return n + (m.bottleneck or Ng) * n_outputs + (n_outputs if m.uses_bias else 0)


#: ModelConfig fields that must agree between the networks of one ensemble
_SHAPE_FIELDS = ("family", "cell", "activation", "hidden_size", "bias", "bottleneck", "input_dropout",
                 "recurrent_dropout")


def build_model(cfgs: ModelConfig | Sequence[ModelConfig], n_code: int, n_outputs: int, seeds: int | Sequence[int],
                *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> PathIntegrator:
    """Build and initialise E networks.

    Parameters
    ----------
    cfgs : ModelConfig or sequence of E ModelConfig
        Shape fields (family, cell, activation, hidden_size, bias, bottleneck,
        input_dropout, recurrent_dropout) must agree; init and dropout may differ per network.
    n_code : int
        Np, size of the target code that sets the initial state.
    n_outputs : int
        Readout size.
    seeds : int or sequence of E ints
        Run seeds (weights come from their ``"weights"`` streams).
    """
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    cfgs = [cfgs] * len(seeds) if isinstance(cfgs, ModelConfig) else list(cfgs)
    shape = {tuple(c.uses_bias if f == "bias" else getattr(c, f) for f in _SHAPE_FIELDS) for c in cfgs}
    if len(shape) != 1:
        raise ConfigError(f"an ensemble needs one model shape ({', '.join(_SHAPE_FIELDS)}); "
                          f"got {sorted(map(str, shape))}")
    c0 = cfgs[0]
    dropout = torch.tensor([c.dropout for c in cfgs], dtype=dtype)
    model = PathIntegrator(c0.cell, c0.activation, c0.hidden_size, n_code, n_outputs, len(seeds),
                           c0.uses_bias, c0.bottleneck, dropout, dtype, family=c0.family,
                           input_dropout=c0.input_dropout, recurrent_dropout=c0.recurrent_dropout)
    model.init_weights(seeds, [c.init for c in cfgs])
    return model.to(device)
