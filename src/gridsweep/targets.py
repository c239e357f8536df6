"""Readout targets: the encodings of position that a path integrator must output.

Every encoding of docs/science.md section 3 is a :class:`Target` that maps positions to
targets (:meth:`Target.encode`), names and computes its loss (:meth:`Target.loss`) and
decodes network outputs back to positions (:meth:`Target.decode`). Targets carry a
leading ensemble axis ``E``: the parameters of network ``e`` (place-cell centres, widths)
are ``params[e]``, drawn from that network's own seed, so a network trained in an
ensemble sees exactly the targets it would see alone. A single network has ``E = 1``.

Build targets with :func:`build_target`; kinds are looked up in :data:`TARGETS`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from gridsweep.arenas import arena_of
from gridsweep.config import BoxConfig, HeadDirectionConfig, TargetConfig
from gridsweep.errors import ConfigError, DataError
from gridsweep.seeding import torch_generator

__all__ = [
    "Target",
    "PlaceCellTarget",
    "CartesianTarget",
    "CartesianHighDimTarget",
    "PolarHighDimTarget",
    "HeadDirectionTarget",
    "TARGETS",
    "PROFILES",
    "UNNORMALISED_PROFILES",
    "build_target",
    "build_head_direction",
    "cross_entropy",
    "mean_squared_error",
    "decoding_error_cm",
]


# --------------------------------------------------------------------------------------
# losses (per network: reduce every axis but the leading E)
# --------------------------------------------------------------------------------------
def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft-label softmax cross-entropy per network.

    ``-(target * log_softmax(logits)).sum(-1)`` averaged over every axis but the first,
    using the fused, stable ``log_softmax`` (docs/science.md section 3).

    Parameters
    ----------
    logits, target : Tensor, (E, ..., Np)

    Returns
    -------
    Tensor, (E,)

    Notes
    -----
    Summed over cells, averaged over batch and time: NFL's
    ``tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels, logits))``
    (mec_hpc_investigations/models/model.py:21, :181) and Sorscher et al.'s
    ``-(y * log(softmax(yhat))).sum(-1).mean()`` (grid-pattern-formation model.py:70).
    """
    nll = -(target * F.log_softmax(logits, dim=-1)).sum(-1)
    return nll.reshape(nll.shape[0], -1).mean(-1)


def mean_squared_error(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Squared error per network, (E, ..., Np) x2 -> (E,).

    Parameters
    ----------
    pred, target : Tensor, (E, ..., Np)
    reduction : {"mean", "sum"}
        ``"mean"`` averages over every axis but E, outputs included; ``"sum"`` sums over
        the outputs (last axis) and averages over the others, Np times the mean.

    Notes
    -----
    ``"mean"`` is NFL's loss for MSE readouts, ``tf.reduce_mean((x - y) ** 2)`` over
    batch, time and outputs (mec_hpc_investigations/models/model.py:41-42, :181);
    docs/science.md section 3.
    """
    se = (pred - target).pow(2)
    if reduction == "sum":
        se = se.sum(-1)
    elif reduction != "mean":
        raise ConfigError(f"target.mse_reduction={reduction!r}: allowed 'mean', 'sum'")
    return se.reshape(se.shape[0], -1).mean(-1)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": cross_entropy,
    "mse": mean_squared_error,
}


def decoding_error_cm(decoded: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance in cm per network, (E, ..., 2) x2 -> (E,) (docs/science.md 6)."""
    err = (decoded - positions).norm(dim=-1)
    return 100.0 * err.reshape(err.shape[0], -1).mean(-1)


def _check_positions(pos: torch.Tensor, E: int) -> None:
    if pos.ndim < 2 or pos.shape[-1] != 2 or pos.shape[0] != E:
        raise DataError(f"positions have shape {tuple(pos.shape)}; expected (E={E}, ..., 2)")


def _expand_params(p: torch.Tensor, pos_ndim: int) -> torch.Tensor:
    """Reshape a per-network (E,) or (E, Np) parameter to broadcast against (E, ..., Np)."""
    extra = pos_ndim - 2  # axes between E and Np in the encoded output
    if p.ndim == 1:
        return p.reshape(p.shape[0], *([1] * (extra + 1)))
    return p.reshape(p.shape[0], *([1] * extra), *p.shape[1:])


# --------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------
class Target(ABC):
    """A readout encoding with a leading ensemble axis.

    Attributes
    ----------
    kind : str
        Registry name.
    loss_name : str
        ``"cross_entropy"`` (outputs are logits of a softmax) or ``"mse"``.
    n_outputs : int
        Np, the number of readout units.
    E : int
        Number of networks whose parameters are stacked.
    """

    kind: str = ""
    #: the kind's own loss; :func:`build_target` sets ``target.loss`` resolved on the instance
    loss_name: str = "cross_entropy"
    #: how the MSE loss reduces the outputs axis (``target.mse_reduction``)
    mse_reduction: str = "mean"

    def __init__(self, n_outputs: int, E: int):
        self.n_outputs = int(n_outputs)
        self.E = int(E)

    # subclasses -------------------------------------------------------------------
    @abstractmethod
    def encode(self, positions: torch.Tensor) -> torch.Tensor:
        """Targets for positions: (E, ..., 2) metres -> (E, ..., Np)."""

    @abstractmethod
    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Positions from network outputs: (E, ..., Np) -> (E, ..., 2) metres."""

    @abstractmethod
    def _tensors(self) -> dict[str, torch.Tensor]:
        """The per-network parameter tensors (leading axis E)."""

    @abstractmethod
    def _rebuild(self, tensors: dict[str, torch.Tensor]) -> "Target":
        """A copy with these parameter tensors."""

    # shared -----------------------------------------------------------------------
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-network loss, (E,).

        ``loss_name`` ``"cross_entropy"``: :func:`cross_entropy` of the outputs as logits;
        ``"mse"``: :func:`mean_squared_error` of the raw outputs, reduced by
        ``mse_reduction`` (also for place cells under ``target.loss: mse``, NFL's
        ``place_field_loss: mse``; docs/science.md section 3).
        """
        if self.loss_name == "mse":
            return mean_squared_error(outputs, targets, self.mse_reduction)
        return LOSSES[self.loss_name](outputs, targets)

    def _with_settings(self, target: "Target") -> "Target":
        target.mse_reduction = self.mse_reduction
        target.loss_name = self.loss_name
        return target

    def select(self, index: int | Sequence[int] | torch.Tensor) -> "Target":
        """The sub-ensemble of networks ``index`` (an int keeps the axis, E = 1)."""
        if isinstance(index, int):
            index = [index]
        idx = torch.as_tensor(index, dtype=torch.long)
        return self._with_settings(self._rebuild({k: v[idx.to(v.device)] for k, v in self._tensors().items()}))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Target":
        out = {}
        for k, v in self._tensors().items():
            out[k] = v.to(device=device, dtype=dtype if (dtype is not None and v.is_floating_point()) else None)
        return self._with_settings(self._rebuild(out))

    @property
    def device(self) -> torch.device:
        return next(iter(self._tensors().values())).device

    def decode_template(self, outputs: torch.Tensor, box: BoxConfig, resolution: float = 0.02,
                        chunk: int = 4096) -> torch.Tensor:
        """Decode by matching outputs against the targets of a grid of candidate positions.

        The decoded position maximises the log-likelihood ``sum_j t_j(x) log q_j`` of the
        predicted distribution q (cross-entropy targets) or minimises the squared error
        (MSE targets) over candidates x on a grid of spacing ``resolution`` metres. It
        works for every encoding, including multi-field cells.

        Parameters
        ----------
        outputs : Tensor, (E, ..., Np)

        Returns
        -------
        Tensor, (E, ..., 2)
        """
        xs = torch.arange(-box.width / 2 + resolution / 2, box.width / 2, resolution)
        ys = torch.arange(-box.height / 2 + resolution / 2, box.height / 2, resolution)
        gx, gy = torch.meshgrid(xs, ys, indexing="xy")
        grid = torch.stack([gx.ravel(), gy.ravel()], -1)
        if not arena_of(box).rectangular:  # candidates inside the arena only
            grid = grid[arena_of(box).contains(grid)]
        grid = grid.to(outputs.device, outputs.dtype)  # (G, 2)
        templates = self.encode(grid.expand(self.E, *grid.shape))  # (E, G, Np)
        flat = outputs.reshape(self.E, -1, self.n_outputs)
        best = []
        for start in range(0, flat.shape[1], chunk):
            block = flat[:, start:start + chunk]
            if self.loss_name == "cross_entropy":
                score = torch.bmm(F.log_softmax(block, -1), templates.transpose(1, 2))
            else:
                score = 2 * torch.bmm(block, templates.transpose(1, 2)) - templates.pow(2).sum(-1)[:, None, :]
            best.append(score.argmax(-1))
        idx = torch.cat(best, dim=1)
        return grid[idx].reshape(*outputs.shape[:-1], 2)


# --------------------------------------------------------------------------------------
# place-cell encodings
# --------------------------------------------------------------------------------------
def _shift_normalise(p: torch.Tensor) -> torch.Tensor:
    """Sorscher's normalisation: p += |min_j p_j|; p /= sum_j p_j (docs/science.md 3)."""
    p = p + p.min(dim=-1, keepdim=True).values.abs()
    return p / p.sum(dim=-1, keepdim=True)


def _profile_gaussian(d2, se, si, ae, ai):
    return F.softmax(-d2 / (2 * se**2), dim=-1)


def _profile_gaussian_unnormalised(d2, se, si, ae, ai):
    """NFL's Gaussian cells under ``place_field_normalization: none``: exp(-d^2 / 2 sigma^2)
    per cell, no softmax (helper_classes.py:374-375, 381-383)."""
    return torch.exp(-d2 / (2 * se**2))


def _profile_dos(d2, se, si, ae, ai):
    return _shift_normalise(F.softmax(-d2 / (2 * se**2), dim=-1) - F.softmax(-d2 / (2 * si**2), dim=-1))


def _profile_dog_equinorm(d2, se, si, ae, ai):
    return _shift_normalise(torch.exp(-d2 / (2 * se**2)) - torch.exp(-d2 / (2 * si**2)))


def _profile_dog_general(d2, se, si, ae, ai):
    return _shift_normalise(ae * torch.exp(-d2 / (2 * se**2)) - ai * torch.exp(-d2 / (2 * si**2)))


def _profile_sod(d2, se, si, ae, ai):
    return F.softmax(-d2 / (2 * se**2) + d2 / (2 * si**2), dim=-1)


#: kind -> f(d2, sigma_E, sigma_I, alpha_E, alpha_I) -> targets, all broadcast (E, ..., Np)
PROFILES: dict[str, Callable[..., torch.Tensor]] = {
    "gaussian": _profile_gaussian,
    "dos": _profile_dos,
    "dog_equinorm": _profile_dog_equinorm,
    "dog_general": _profile_dog_general,
    "sod": _profile_sod,
}

#: kind -> profile under ``target.normalization: none`` (the kinds that read it; config.py
#: sends ``dos`` with ``none`` to ``dog_equinorm``, the same targets)
UNNORMALISED_PROFILES: dict[str, Callable[..., torch.Tensor]] = {"gaussian": _profile_gaussian_unnormalised}


class PlaceCellTarget(Target):
    """Place-cell encodings: gaussian, dos, dog_equinorm, dog_general, sod (docs/science.md 3).

    Parameters
    ----------
    kind : str
        A key of :data:`PROFILES`.
    centres : Tensor, (E, Np, F, 2)
        Field centres in metres; F fields per cell (F = 1 for homogeneous cells).
    field_mask : Tensor of bool, (E, Np, F)
        Which fields exist (multi-field cells are padded to F).
    sigma_e, sigma_i : Tensor, (E, Np, F)
        Centre and surround widths per field, metres (sigma_i unused by ``gaussian``).
    alpha_e, alpha_i : Tensor, (E,)
        Amplitudes (``dog_general``).
    decode_k : int
        Number of most active cells averaged by the top-k decoder.
    period : (float, float), optional
        Box size of a periodic box (minimum-image distances).
    max_response : Tensor of bool, (E,), optional
        Per network, the field rule of multi-field cells: True for ``"max_response"``
        (the default), False for ``"nearest"``.
    normalization : {"global", "none"}
        ``"none"``: the kind's profile from :data:`UNNORMALISED_PROFILES` (Gaussian cells
        as plain exponentials, NFL's ``place_field_normalization: none``).

    Notes
    -----
    A cell with several fields responds, at each position, through one field with that
    field's widths (NFL's multi-field cells, docs/science.md section 3, claim R6). Under
    ``"max_response"`` it is the field of largest centre response,
    argmin_f d_f^2 / (2 sigma_E,f^2), NFL's rule
    (mec_hpc_investigations/models/helper_classes.py:361-371); under ``"nearest"`` the
    nearest centre, argmin_f d_f^2. The surround uses the same field's sigma_I, as NFL
    gathers the surround distance with the centre's argmin (helper_classes.py:392-395,
    :411-414, :432-435, :447-450). The top-k decoder
    averages the centres of the k most active predicted cells (for ``dog_equinorm`` the k
    least active: its targets are <= 0 before the shift); for multi-field cells it picks,
    among all combinations of one field per selected cell, the one of least spread.
    """

    loss_name = "cross_entropy"

    def __init__(self, kind, centres, field_mask, sigma_e, sigma_i, alpha_e, alpha_i, decode_k=3,
                 period: tuple[float, float] | None = None, max_response: torch.Tensor | None = None,
                 normalization: str = "global"):
        if kind not in PROFILES:
            raise ConfigError(f"target.kind={kind!r}: not a place-cell kind; allowed: {sorted(PROFILES)}")
        if normalization == "global":
            self._profile = PROFILES[kind]
        elif normalization == "none" and kind in UNNORMALISED_PROFILES:
            self._profile = UNNORMALISED_PROFILES[kind]
        else:
            raise ConfigError(f"target.normalization={normalization!r} with target.kind={kind!r}: allowed 'global', "
                              f"or 'none' for {sorted(UNNORMALISED_PROFILES)}")
        self.normalization = normalization
        super().__init__(centres.shape[1], centres.shape[0])
        self.kind = kind
        self.centres = centres
        self.field_mask = field_mask
        self.sigma_e = sigma_e
        self.sigma_i = sigma_i
        self.alpha_e = alpha_e
        self.alpha_i = alpha_i
        self.decode_k = int(decode_k)
        self.period = period
        if max_response is None:
            max_response = torch.ones(centres.shape[0], dtype=torch.bool, device=centres.device)
        self.max_response = max_response
        # host-side: whether any network weighs its fields by width (read once, never per step)
        self._weigh_fields = centres.shape[2] > 1 and bool(max_response.any())

    @property
    def n_fields(self) -> int:
        return self.centres.shape[2]

    @property
    def cell_centres(self) -> torch.Tensor:
        """(E, Np, 2): the first field of each cell (the only one for homogeneous cells)."""
        return self.centres[:, :, 0]

    def _tensors(self):
        return {"centres": self.centres, "field_mask": self.field_mask, "sigma_e": self.sigma_e,
                "sigma_i": self.sigma_i, "alpha_e": self.alpha_e, "alpha_i": self.alpha_i,
                "max_response": self.max_response}

    def _rebuild(self, t):
        return PlaceCellTarget(self.kind, t["centres"], t["field_mask"], t["sigma_e"], t["sigma_i"],
                               t["alpha_e"], t["alpha_i"], self.decode_k, self.period, t["max_response"],
                               self.normalization)

    def _responding_field(self, positions: torch.Tensor):
        """Squared distance to the field each cell responds through, and that field's widths.

        positions (E, ..., 2) -> d2, sigma_e, sigma_i each (E, ..., Np). The field is
        argmin_f d_f^2 / (2 sigma_E,f^2) for ``max_response`` networks and argmin_f d_f^2
        for ``nearest`` ones (class Notes).
        """
        E = self.E
        flat = positions.reshape(E, -1, 2)  # (E, N, 2)
        if self.period is None and self.n_fields == 1:
            c = self.cell_centres  # (E, Np, 2)
            d2 = (flat.pow(2).sum(-1, keepdim=True) - 2 * torch.bmm(flat, c.transpose(1, 2))
                  + c.pow(2).sum(-1)[:, None, :]).clamp_min(0)
            se = self.sigma_e[:, None, :, 0].expand_as(d2)
            si = self.sigma_i[:, None, :, 0].expand_as(d2)
        else:
            if self.period is not None:  # periodic box: distance to the nearest image (minimum image)
                diff = flat[:, :, None, None, :] - self.centres[:, None]  # (E, N, Np, F, 2)
                size = torch.tensor(self.period, dtype=flat.dtype, device=flat.device)
                d2f = (torch.remainder(diff + size / 2, size) - size / 2).pow(2).sum(-1)
            else:  # |x|^2 - 2 x.c + |c|^2 as one batched product: no (E, N, Np, F, 2) intermediate
                c = self.centres.reshape(E, -1, 2)  # (E, Np F, 2)
                d2f = torch.baddbmm(c.pow(2).sum(-1)[:, None, :], flat, c.transpose(1, 2), alpha=-2)
                d2f.add_(flat.pow(2).sum(-1, keepdim=True)).clamp_min_(0)
                d2f = d2f.view(E, flat.shape[1], *self.centres.shape[1:3])  # (E, N, Np, F)
            if self._weigh_fields:  # max_response: rank fields by d^2 / (2 sigma_E^2), in place
                w = torch.where(self.max_response[:, None, None], 0.5 / self.sigma_e.pow(2),
                                torch.ones((), dtype=d2f.dtype, device=d2f.device))  # (E, Np, F)
                d2f.mul_(w[:, None])
            d2f.masked_fill_(~self.field_mask[:, None], float("inf"))
            d2, idx = d2f.min(-1)  # (E, N, Np)
            se = torch.gather(self.sigma_e[:, None].expand(-1, d2.shape[1], -1, -1), 3, idx[..., None])[..., 0]
            si = torch.gather(self.sigma_i[:, None].expand(-1, d2.shape[1], -1, -1), 3, idx[..., None])[..., 0]
            if self._weigh_fields:  # back to the squared distance of the chosen field (w = 1: nearest)
                d2 = d2 / torch.gather(w[:, None].expand(-1, d2.shape[1], -1, -1), 3, idx[..., None])[..., 0]
        shape = (*positions.shape[:-1], self.n_outputs)
        return d2.reshape(shape), se.reshape(shape), si.reshape(shape)

    def encode(self, positions):
        _check_positions(positions, self.E)
        d2, se, si = self._responding_field(positions)
        ae = _expand_params(self.alpha_e, positions.ndim)
        ai = _expand_params(self.alpha_i, positions.ndim)
        return self._profile(d2, se, si, ae, ai)

    def decode(self, outputs):
        scores = -outputs if self.kind == "dog_equinorm" else outputs
        k = min(self.decode_k, self.n_outputs)
        top = scores.topk(k, dim=-1).indices  # (E, ..., k)
        E = self.E
        flat_idx = top.reshape(E, -1, k)  # (E, N, k)
        if self.n_fields == 1:
            c = self.cell_centres  # (E, Np, 2)
            picked = torch.gather(c[:, None].expand(-1, flat_idx.shape[1], -1, -1), 2,
                                  flat_idx[..., None].expand(-1, -1, -1, 2))  # (E, N, k, 2)
            if self.period is not None:  # circular mean per axis, so centres across a wrap average correctly
                size = torch.tensor(self.period, dtype=picked.dtype, device=picked.device)
                ang = 2 * torch.pi * (picked + size / 2) / size
                mean = torch.atan2(torch.sin(ang).mean(-2), torch.cos(ang).mean(-2))
                dec = torch.remainder(mean, 2 * torch.pi) * size / (2 * torch.pi) - size / 2
                return dec.reshape(*outputs.shape[:-1], 2)
            return picked.mean(-2).reshape(*outputs.shape[:-1], 2)
        return self._decode_multifield(flat_idx).reshape(*outputs.shape[:-1], 2)

    def _decode_multifield(self, idx: torch.Tensor) -> torch.Tensor:
        """Least-spread combination of one field per top cell; idx (E, N, k) -> (E, N, 2)."""
        E, N, k = idx.shape
        Fm = self.n_fields
        ar = torch.arange(E, device=idx.device)[:, None, None]
        cen = self.centres[ar, idx]  # (E, N, k, F, 2)
        mask = self.field_mask[ar, idx]  # (E, N, k, F)
        # all F^k combinations of field indices
        combos = torch.cartesian_prod(*[torch.arange(Fm, device=idx.device)] * k).reshape(-1, k)  # (C, k)
        out = torch.empty(E, N, 2, dtype=cen.dtype, device=cen.device)
        step = max(1, 2_000_000 // max(1, combos.shape[0] * k))
        kk = torch.arange(k, device=idx.device)
        for s in range(0, N, step):
            cb = cen[:, s:s + step]  # (E, n, k, F, 2)
            mb = mask[:, s:s + step]
            pts = cb[:, :, kk, combos]  # (E, n, C, k, 2)
            valid = mb[:, :, kk, combos].all(-1)  # (E, n, C)
            mean = pts.mean(-2, keepdim=True)
            spread = (pts - mean).pow(2).sum((-1, -2)).masked_fill(~valid, float("inf"))
            best = spread.argmin(-1)  # (E, n)
            out[:, s:s + step] = torch.gather(mean[..., 0, :], 2, best[..., None, None].expand(-1, -1, 1, 2))[:, :, 0]
        return out


def _draw_uniform(gen, shape, low, high, dtype):
    return low + (high - low) * torch.rand(shape, generator=gen, dtype=dtype)


def _build_place_cells(cfgs: Sequence[TargetConfig], seeds: Sequence[int], box: BoxConfig, dtype) -> PlaceCellTarget:
    kind = cfgs[0].kind
    Np = cfgs[0].n_cells
    het = [c.heterogeneity for c in cfgs]
    Fmax = max((h.max_fields if h is not None and h.fields_lambda > 0 else 1) for h in het)
    centres = torch.zeros(len(cfgs), Np, Fmax, 2, dtype=dtype)
    mask = torch.zeros(len(cfgs), Np, Fmax, dtype=torch.bool)
    se = torch.zeros(len(cfgs), Np, Fmax, dtype=dtype)
    si = torch.zeros(len(cfgs), Np, Fmax, dtype=dtype)
    for e, (cfg, seed) in enumerate(zip(cfgs, seeds)):
        # Each network draws with its own padding F, so its targets do not depend on
        # which other networks share the ensemble; padded slots stay masked.
        h = cfg.heterogeneity
        F = h.max_fields if h is not None and h.fields_lambda > 0 else 1
        g = torch_generator(seed, "targets")
        arena = arena_of(box)
        if arena.rectangular:
            xy = torch.stack([_draw_uniform(g, (Np, F), -box.width / 2, box.width / 2, dtype),
                              _draw_uniform(g, (Np, F), -box.height / 2, box.height / 2, dtype)], -1)
        else:  # uniform inside the arena (holes excluded), by rejection from the same stream
            xy = arena.sample_uniform(g, Np * F, shape=(Np, F), dtype=dtype)
        sig_e = torch.full((Np, F), cfg.sigma, dtype=dtype)
        ratio_i = (cfg.sigma_i / cfg.sigma) if cfg.sigma_i is not None else 1.0
        sig_i = sig_e * ratio_i
        if h is None:
            m = torch.zeros(Np, F, dtype=torch.bool)
            m[:, 0] = True
        else:
            if h.fields_lambda > 0:
                rate = torch.full((Np,), float(h.fields_lambda), dtype=torch.float64)
                nf = (1 + torch.poisson(rate, generator=g).long()).clamp(max=F)
            else:
                nf = torch.ones(Np, dtype=torch.long)
            m = torch.arange(F)[None, :] < nf[:, None]
            if h.sigma_range is not None:
                sig_e = _draw_uniform(g, (Np, F), h.sigma_range[0], h.sigma_range[1], dtype)
                sig_i = sig_e * ratio_i
            if h.surround_width_ratio_range is not None:
                r = _draw_uniform(g, (Np, F), *h.surround_width_ratio_range, dtype)
                sig_i = sig_e * r
        centres[e, :, :F] = xy
        mask[e, :, :F] = m
        se[e, :, :F] = sig_e
        si[e, :, :F] = sig_i
        if F < Fmax:  # harmless finite values in masked slots
            centres[e, :, F:] = xy[:, :1]
            se[e, :, F:] = sig_e[:, :1]
            si[e, :, F:] = sig_i[:, :1]
    alpha_e = torch.tensor([c.alpha_e for c in cfgs], dtype=dtype)
    alpha_i = torch.tensor([c.alpha_i for c in cfgs], dtype=dtype)
    max_response = torch.tensor([h is None or h.field_rule == "max_response" for h in het], dtype=torch.bool)
    period = (box.width, box.height) if box.boundary == "periodic" else None
    return PlaceCellTarget(kind, centres, mask, se, si, alpha_e, alpha_i, cfgs[0].decode_k, period, max_response,
                           cfgs[0].normalization)


# --------------------------------------------------------------------------------------
# Cartesian and polar encodings
# --------------------------------------------------------------------------------------
class CartesianTarget(Target):
    """The position itself, x in R^2, with an MSE loss (docs/science.md section 3)."""

    kind = "cartesian"
    loss_name = "mse"

    def __init__(self, E: int, dummy: torch.Tensor | None = None):
        super().__init__(2, E)
        self._dummy = torch.zeros(E) if dummy is None else dummy

    def _tensors(self):
        return {"dummy": self._dummy}

    def _rebuild(self, t):
        return CartesianTarget(t["dummy"].shape[0], t["dummy"])

    def encode(self, positions):
        _check_positions(positions, self.E)
        return positions

    def decode(self, outputs):
        return outputs


class CartesianHighDimTarget(Target):
    """A random affine embedding ``A x + b`` of the position, decoded with pinv(A).

    Notes
    -----
    docs/science.md section 3: A in R^{Np x 2}, b ~ U(-1, 1). The entries of A are drawn
    U(-1, 1) here as well (the distribution of A is not stated in the papers).
    """

    kind = "cartesian_highdim"
    loss_name = "mse"

    def __init__(self, A: torch.Tensor, b: torch.Tensor):
        super().__init__(A.shape[1], A.shape[0])
        self.A, self.b = A, b  # (E, Np, 2), (E, Np)

    def _tensors(self):
        return {"A": self.A, "b": self.b}

    def _rebuild(self, t):
        return CartesianHighDimTarget(t["A"], t["b"])

    def encode(self, positions):
        _check_positions(positions, self.E)
        flat = positions.reshape(self.E, -1, 2)
        out = torch.bmm(flat, self.A.transpose(1, 2)) + self.b[:, None, :]
        return out.reshape(*positions.shape[:-1], self.n_outputs)

    def decode(self, outputs):
        flat = outputs.reshape(self.E, -1, self.n_outputs) - self.b[:, None, :]
        pinv = torch.linalg.pinv(self.A)  # (E, 2, Np)
        return torch.bmm(flat, pinv.transpose(1, 2)).reshape(*outputs.shape[:-1], 2)


class PolarHighDimTarget(Target):
    """Np/2 units linear in the radius and Np/2 von Mises units of the polar angle.

    Notes
    -----
    docs/science.md section 3: units ``a_j r + b_j`` (a_j, b_j ~ U(-1, 1)) and
    ``exp(kappa cos(theta - mu_j))`` with preferred angles mu_j evenly spaced on the
    circle. Decoding: r by least squares on the radial units, theta from the most active
    angular unit.
    """

    kind = "polar_highdim"
    loss_name = "mse"

    def __init__(self, a, b, mu, kappa):
        super().__init__(2 * a.shape[1], a.shape[0])
        self.a, self.b, self.mu, self.kappa = a, b, mu, kappa  # (E, H) x3, (E,)

    def _tensors(self):
        return {"a": self.a, "b": self.b, "mu": self.mu, "kappa": self.kappa}

    def _rebuild(self, t):
        return PolarHighDimTarget(t["a"], t["b"], t["mu"], t["kappa"])

    def encode(self, positions):
        _check_positions(positions, self.E)
        r = positions.norm(dim=-1, keepdim=True)
        theta = torch.atan2(positions[..., 1], positions[..., 0])[..., None]
        nd = positions.ndim
        radial = _expand_params(self.a, nd) * r + _expand_params(self.b, nd)
        angular = torch.exp(_expand_params(self.kappa, nd) * torch.cos(theta - _expand_params(self.mu, nd)))
        return torch.cat([radial, angular], -1)

    def decode(self, outputs):
        H = self.a.shape[1]
        nd = outputs.ndim
        a = _expand_params(self.a, nd)
        radial = outputs[..., :H] - _expand_params(self.b, nd)
        r = (radial * a).sum(-1) / a.pow(2).sum(-1)
        j = outputs[..., H:].argmax(-1)
        mu = torch.gather(self.mu.reshape(self.E, *([1] * (nd - 2)), H).expand(*outputs.shape[:-1], H), -1,
                          j[..., None])[..., 0]
        return torch.stack([r * torch.cos(mu), r * torch.sin(mu)], -1)


# --------------------------------------------------------------------------------------
# head-direction cells (an extra readout)
# --------------------------------------------------------------------------------------
class HeadDirectionTarget:
    """Head-direction cells with von Mises tuning, softmax-normalised (Banino et al. 2018).

    ``encode(headings (E, ...)) -> (E, ..., Nh)``; preferred directions are drawn
    uniformly from each network's seed. Decoding returns the circular mean of the
    predicted distribution's preferred directions.
    """

    kind = "head_direction"
    loss_name = "cross_entropy"

    def __init__(self, mu: torch.Tensor, kappa: float):
        self.mu = mu  # (E, Nh)
        self.kappa = float(kappa)
        self.E, self.n_outputs = mu.shape

    def encode(self, headings: torch.Tensor) -> torch.Tensor:
        mu = self.mu.reshape(self.E, *([1] * (headings.ndim - 1)), self.n_outputs)
        return F.softmax(self.kappa * torch.cos(headings[..., None] - mu), dim=-1)

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        q = outputs.softmax(-1)
        mu = self.mu.reshape(self.E, *([1] * (outputs.ndim - 2)), self.n_outputs)
        return torch.atan2((q * torch.sin(mu)).sum(-1), (q * torch.cos(mu)).sum(-1))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return cross_entropy(outputs, targets)

    def select(self, index) -> "HeadDirectionTarget":
        idx = torch.as_tensor([index] if isinstance(index, int) else index, dtype=torch.long)
        return HeadDirectionTarget(self.mu[idx.to(self.mu.device)], self.kappa)

    def to(self, device=None, dtype=None) -> "HeadDirectionTarget":
        return HeadDirectionTarget(self.mu.to(device=device, dtype=dtype), self.kappa)


def build_head_direction(cfg: HeadDirectionConfig, seeds: Sequence[int], dtype=torch.float32) -> HeadDirectionTarget:
    """Head-direction readout for E networks (one seed each)."""
    mu = torch.stack([2 * math.pi * torch.rand(cfg.n_cells, generator=torch_generator(s, "head_direction"), dtype=dtype)
                      for s in seeds])
    return HeadDirectionTarget(mu, cfg.kappa)


# --------------------------------------------------------------------------------------
# registry and builder
# --------------------------------------------------------------------------------------
def _build_cartesian(cfgs, seeds, box, dtype):
    return CartesianTarget(len(cfgs), torch.zeros(len(cfgs), dtype=dtype))


def _build_cartesian_highdim(cfgs, seeds, box, dtype):
    Np = cfgs[0].n_cells
    A, b = [], []
    for s in seeds:
        g = torch_generator(s, "targets")
        A.append(_draw_uniform(g, (Np, 2), -1.0, 1.0, dtype))
        b.append(_draw_uniform(g, (Np,), -1.0, 1.0, dtype))
    return CartesianHighDimTarget(torch.stack(A), torch.stack(b))


def _build_polar_highdim(cfgs, seeds, box, dtype):
    H = cfgs[0].n_cells // 2
    a, b = [], []
    for s in seeds:
        g = torch_generator(s, "targets")
        a.append(_draw_uniform(g, (H,), -1.0, 1.0, dtype))
        b.append(_draw_uniform(g, (H,), -1.0, 1.0, dtype))
    mu = (2 * math.pi * torch.arange(H, dtype=dtype) / H).expand(len(cfgs), H).clone()
    kappa = torch.tensor([c.kappa for c in cfgs], dtype=dtype)
    return PolarHighDimTarget(torch.stack(a), torch.stack(b), mu, kappa)


#: kind -> builder(cfgs, seeds, box, dtype) -> Target
TARGETS: dict[str, Callable[..., Target]] = {
    "cartesian": _build_cartesian,
    "cartesian_highdim": _build_cartesian_highdim,
    "polar_highdim": _build_polar_highdim,
    **{k: _build_place_cells for k in PROFILES},
}


def build_target(
    cfg: TargetConfig | Sequence[TargetConfig],
    seeds: int | Sequence[int],
    box: BoxConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Target:
    """Build the targets of E networks.

    Parameters
    ----------
    cfg : TargetConfig or sequence of E TargetConfig
        One config is shared by every seed. Several configs must share ``kind`` and
        ``n_cells`` (they may differ in widths, surround, amplitudes, heterogeneity).
    seeds : int or sequence of E ints
        Run seeds; each network's parameters come from the ``"targets"`` stream of its seed.
    box : BoxConfig, optional
        The arena (default 2.2 m square).

    Returns
    -------
    Target
        With ``E = len(seeds)``.

    Examples
    --------
    >>> import torch
    >>> from gridsweep.config import TargetConfig
    >>> t = build_target(TargetConfig(kind="dos", n_cells=64, surround_width_ratio=2.0), seeds=0)
    >>> y = t.encode(torch.zeros(1, 5, 2))
    >>> tuple(y.shape), bool(torch.allclose(y.sum(-1), torch.ones(1, 5)))
    ((1, 5, 64), True)
    """
    box = box or BoxConfig()
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    cfgs = [cfg] * len(seeds) if isinstance(cfg, TargetConfig) else list(cfg)
    if len(cfgs) != len(seeds):
        raise ConfigError(f"got {len(cfgs)} target configs for {len(seeds)} seeds; they must match")
    if not seeds:
        raise ConfigError("seeds: need at least one network")
    kinds = {c.kind for c in cfgs}
    sizes = {c.n_cells for c in cfgs}
    if len(kinds) > 1 or len(sizes) > 1:
        raise ConfigError(f"an ensemble needs one target kind and n_cells; got kinds {sorted(kinds)}, n_cells {sorted(sizes)}")
    for field in ("mse_reduction", "loss_name", "normalization"):
        found = {getattr(c, field) for c in cfgs}
        if len(found) > 1:
            name = "loss" if field == "loss_name" else field
            raise ConfigError(f"target.{name}: an ensemble needs one; got {sorted(found)}")
    target = TARGETS[cfgs[0].kind](cfgs, seeds, box, dtype)
    target.mse_reduction = cfgs[0].mse_reduction
    target.loss_name = cfgs[0].loss_name
    return target.to(device=device)
