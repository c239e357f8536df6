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
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

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
        h0 = torch.bmm(code0, self.W_enc)
        c0 = torch.bmm(code0, self.W_enc_c) if self.W_enc_c is not None else None
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
        """
        E, B, T, _ = velocities.shape
        xw = torch.bmm(velocities.reshape(E, B * T, 2), self.W_ih).reshape(E, B, T, -1)
        h, c = self.initial_state(code0)
        act = ACTIVATIONS[self.activation]
        b = self.b
        states = []
        for t in range(T):
            h, c = self.spec.step(xw[:, :, t], h, c, self.W_hh, b, act)
            states.append(h)
        return torch.stack(states, dim=2)

    def readout(self, hidden: torch.Tensor, dropout_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs from hidden states, (E, B, T, Ng) -> (E, B, T, Nout).

        ``dropout_mask`` (E, B, T, Ng) of 0/1 is applied with inverted scaling by the
        per-network keep probability; pass None in evaluation.
        """
        E = hidden.shape[0]
        x = hidden
        if dropout_mask is not None:
            keep = (1 - self.dropout).reshape(E, 1, 1, 1)
            x = x * dropout_mask / keep
        flat = x.reshape(E, -1, x.shape[-1])
        if self.W_bot is not None:
            flat = torch.bmm(flat, self.W_bot)
        out = torch.bmm(flat, self.W_dec)
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
