"""Simulated trajectories of an animal foraging in a box.

Two motion models, both vectorised over any leading batch shape and seeded by explicit
``torch.Generator`` objects (never the global RNG):

``sorscher``
    The published generator of Sorscher et al. (used by Sorscher, Nayebi and NFL),
    docs/science.md section 2: i.i.d. turn rate and Rayleigh speed per step, wall avoidance
    that turns the heading parallel to a wall closer than 3 cm and slows the agent.
``ou``
    A RatInABox-style model: Ornstein-Uhlenbeck processes for speed and rotational
    velocity, with a soft repulsion that removes the velocity component towards a wall
    as the agent approaches it.

Arenas (``box.shape``, :mod:`gridsweep.arenas`, docs/arenas.md): in the original
rectangle both models run their original code, bit for bit. In any other arena (circle,
polygon, holes) the wall rules are generalised to the nearest wall *segment* (distance to
the segment, angle between the heading and the normal pointing into that wall), every step
is stopped just short of the first wall it would cross, and start positions are drawn
uniformly inside the arena by rejection. Speed (bench/arenas.py, docs/arenas.md): on CPU
the wall work of straight-walled arenas (distances to every segment, stop-at-wall with its
inside test, the OU repulsion's terms) is one compiled C call each per step
(:mod:`gridsweep.arena_kernel`, bit-identical; ``GRIDSWEEP_ARENA_KERNEL=numpy`` selects the
NumPy/torch path described next). On that path only agents within reach of a wall are
measured (:class:`_NearWalls`, large batches) and the stop-at-wall test of the few agents
within a step of a wall runs in NumPy on CPU (:func:`_stop_at_walls_numpy`); at large batches the distances are computed wall-major
(:func:`_wall_distances_t`). All repeat the plain rule's float operations, so the
numbers are bit-identical to it (tests/test_arenas.py keeps a reference copy).

Randomness and dynamics are separated: :func:`sample_noise` draws every random number
of a batch from one generator, :func:`integrate` turns that noise into positions
deterministically. Networks in an ensemble each own a generator, so a network trained
in an ensemble sees exactly the trajectories it would see alone.

Conventions (docs/science.md section 2): the network input at step t is the displacement
``velocities[..., t, :]`` that moves ``positions[..., t-1, :]`` (``start`` for t = 0) to
``positions[..., t, :]``; the target at step t is ``positions[..., t, :]``.
"""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from gridsweep import arena_kernel
from gridsweep.arenas import Arena, arena_of
from gridsweep.config import BoxConfig, TrajectoryConfig

__all__ = ["Trajectories", "sample_noise", "ensemble_noise", "integrate", "generate", "MOTION_MODELS"]


@dataclass(frozen=True)
class Trajectories:
    """A batch of trajectories.

    Attributes
    ----------
    velocities : Tensor, (..., T, 2)
        Displacement per step in metres (the network input; divide by dt for m/s).
    start : Tensor, (..., 2)
        Position before the first step, metres.
    positions : Tensor, (..., T, 2)
        Position after each step, metres (the network target).
    headings : Tensor, (..., T)
        Direction of motion of each step, radians in [-pi, pi).
    """

    velocities: torch.Tensor
    start: torch.Tensor
    positions: torch.Tensor
    headings: torch.Tensor

    def to(self, device: torch.device | str) -> "Trajectories":
        return Trajectories(*(t.to(device) for t in (self.velocities, self.start, self.positions, self.headings)))


def _uniform(gen: torch.Generator, shape: Sequence[int], low: float, high: float, device, dtype) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen, device=device, dtype=dtype)


def sample_noise(
    gen: torch.Generator,
    batch: int,
    steps: int,
    cfg: TrajectoryConfig,
    box: BoxConfig,
    *,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Draw every random number one batch of trajectories needs, from ``gen`` alone.

    Parameters
    ----------
    gen : torch.Generator
        Source of randomness; its device is the device of every returned tensor.
    batch, steps : int
        B trajectories of T steps.

    Returns
    -------
    dict of Tensor
        ``start`` (B, 2), ``heading`` (B,), and per-step noise (B, T) whose meaning
        depends on the motion model (``turn`` and ``speed`` for sorscher; standard
        normals ``speed_noise``, ``rotation_noise`` and an initial ``speed0`` for ou).
    """
    dev = gen.device
    arena = _arena(box)
    if arena is None:
        start = torch.stack(
            [
                _uniform(gen, (batch,), -box.width / 2, box.width / 2, dev, dtype),
                _uniform(gen, (batch,), -box.height / 2, box.height / 2, dev, dtype),
            ],
            dim=-1,
        )
    else:  # uniform inside the arena, by rejection from the same stream
        start = arena.sample_uniform(gen, batch, dtype=dtype, device=dev)
    heading = _uniform(gen, (batch,), 0.0, 2 * math.pi, dev, dtype)
    if cfg.motion == "sorscher":
        turn = cfg.turn_rate_std * torch.randn((batch, steps), generator=gen, device=dev, dtype=dtype)
        # Rayleigh(scale b) = b * sqrt(-2 ln U), U ~ U(0, 1]
        u = 1.0 - torch.rand((batch, steps), generator=gen, device=dev, dtype=dtype)
        speed = cfg.speed_scale * torch.sqrt(-2.0 * torch.log(u))
        return {"start": start, "heading": heading, "turn": turn, "speed": speed}
    z0 = torch.randn((batch,), generator=gen, device=dev, dtype=dtype)
    if cfg.ou_speed_model == "ratinabox":  # stationary Rayleigh speed from the same draw
        speed0 = _normal_to_rayleigh(z0, cfg.ou_speed_mean)
    else:
        speed0 = (cfg.ou_speed_mean + cfg.ou_speed_std * z0).abs()
    return {
        "start": start,
        "heading": heading,
        "speed0": speed0,
        "speed_noise": torch.randn((batch, steps), generator=gen, device=dev, dtype=dtype),
        "rotation_noise": torch.randn((batch, steps), generator=gen, device=dev, dtype=dtype),
    }


def _normal_to_rayleigh(z: torch.Tensor, sigma: float) -> torch.Tensor:
    """Map a standard normal to a Rayleigh(sigma) variable through their CDFs.

    ``sigma sqrt(-2 log(1 - Phi(z)))``, with ``log(1 - Phi(z)) = log_ndtr(-z)`` (no
    underflow). RatInABox's ``utils.normal_to_rayleigh`` (ratinabox 1.15, utils.py:409-413).
    """
    return sigma * torch.sqrt(-2.0 * torch.special.log_ndtr(-z))


def _rayleigh_to_normal(speed: torch.Tensor, sigma: float) -> torch.Tensor:
    """Inverse of :func:`_normal_to_rayleigh`, the uniform clamped to [1e-6, 1 - 1e-6] as
    RatInABox's ``utils.rayleigh_to_normal`` does (utils.py:416-421)."""
    u = (-torch.expm1(-(speed * speed) / (2 * sigma**2))).clamp(1e-6, 1 - 1e-6)
    return torch.special.ndtri(u)


def _wrap_angle(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def _nearest_wall(pos: torch.Tensor, box: BoxConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to the nearest wall and the angle of its outward normal.

    Walls in order +x, +y, -x, -y with outward normals at 0, pi/2, pi, 3 pi/2.
    """
    hw, hh = box.width / 2, box.height / 2
    x, y = pos[..., 0], pos[..., 1]
    dists = torch.stack([hw - x, hh - y, hw + x, hh + y], dim=-1)
    d_wall, idx = dists.min(dim=-1)
    return d_wall, idx.to(pos.dtype) * (math.pi / 2)


def _clip_to_box(pos: torch.Tensor, box: BoxConfig) -> torch.Tensor:
    lim = torch.tensor([box.width / 2, box.height / 2], dtype=pos.dtype, device=pos.device)
    return torch.maximum(torch.minimum(pos, lim), -lim)


def _wrap_to_box(pos: torch.Tensor, box: BoxConfig) -> torch.Tensor:
    size = torch.tensor([box.width, box.height], dtype=pos.dtype, device=pos.device)
    return torch.remainder(pos + size / 2, size) - size / 2


def _arena(box: BoxConfig) -> Arena | None:
    """The arena's geometry, or None for the original rectangle (original code path)."""
    arena = arena_of(box)
    return None if arena.rectangular else arena


#: A step stopped at a wall ends this far (metres) before it, along the step.
WALL_MARGIN = 1e-5


def _wall_distances(pos: torch.Tensor, walls: dict) -> torch.Tensor:
    """Distance from points (..., 2) to every wall, (..., S) (+1 column for a circle's wall)."""
    x, y = pos[..., 0:1], pos[..., 1:2]
    cols = []
    if walls["n_segments"]:
        rx, ry = x - walls["ax"], y - walls["ay"]
        t = torch.addcmul(rx * walls["dx"], ry, walls["dy"]).mul_(walls["inv_len2"]).clamp_(0.0, 1.0)
        ex, ey = torch.addcmul(rx, t, walls["dx"], value=-1), torch.addcmul(ry, t, walls["dy"], value=-1)
        cols.append(torch.addcmul(ex * ex, ey, ey).sqrt_())
    if walls["radius"] is not None:
        cols.append(walls["radius"] - torch.sqrt(x * x + y * y))
    return cols[0] if len(cols) == 1 else torch.cat(cols, -1)


def _nearest_wall_arena(pos: torch.Tensor, walls: dict, dists: torch.Tensor | None = None,
                        nearest: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to the nearest wall and the angle of that wall's normal (pointing into it).

    Generalises :func:`_nearest_wall` (whose walls are the box's four sides) to the wall
    segments of any arena (distance to the segment, the segment's normal) plus a circle's
    wall (distance ``R - |x|``, normal along x). Vectorised over the batch and the walls.
    ``dists`` (..., W) and ``nearest = dists.min(dim=-1)`` may be passed if already known.
    """
    dists = _wall_distances(pos, walls) if dists is None else dists
    d_wall, idx = dists.min(dim=-1) if nearest is None else nearest
    if walls["radius"] is None:
        return d_wall, walls["normal_angle"][idx]
    circle = torch.atan2(pos[..., 1], pos[..., 0])
    S = walls["n_segments"]
    if not S:
        return d_wall, circle
    return d_wall, torch.where(idx == S, circle, walls["normal_angle"][idx.clamp(max=S - 1)])


#: On CPU, measure straight walls wall-major ((S, K) tensors, NumPy reductions), which
#: gives the same numbers faster; tests switch it off to check the agent-major layout too.
_WALL_MAJOR = True

#: Agents x walls from which the wall-major layout is used (below it the extra NumPy calls
#: cost more than the better vectorisation saves; bench/arenas.py at batch 200 and 2000).
WALL_MAJOR_MIN_ELEMENTS = 16384

#: ``(values, indices)`` of the nearest wall, as ``Tensor.min(dim=-1)`` returns them.
_Nearest = namedtuple("_Nearest", "values indices")


def _wall_major(walls: dict) -> bool:
    """Whether :func:`_wall_distances_t` applies: CPU wall tensors and no circle's wall."""
    return _WALL_MAJOR and "columns" in walls and walls["radius"] is None and walls["n_segments"] > 0


def _wall_distances_t(p: torch.Tensor, walls: dict) -> tuple[torch.Tensor, np.ndarray]:
    """:func:`_wall_distances` of points ``p`` (K, 2), wall-major, and the nearest distance.

    Element by element the float operations of :func:`_wall_distances` (its fused
    multiply-adds included: ``torch.addcmul`` in both), so the same distances, laid out
    (S, K): the K agents run along the fast axis, which vectorises better for few walls
    and many agents, and the nearest distance is an elementwise minimum over rows. The
    nearest wall's index (a slow reduction) is left to :meth:`_NearWalls.nearest`, which
    needs it only for agents within the wall rule's range. Returns the distances (S, K)
    and the nearest distance (K,) as a NumPy array.
    """
    c = walls["columns"]  # (S, 1) each; a2, d2 (2, S, 1): x and y parts side by side
    r = p.T[:, None, :] - c["a2"]  # (2, S, K): x - ax, y - ay
    rx, ry = r[0], r[1]
    t = torch.addcmul(rx * c["dx"], ry, c["dy"]).mul_(c["inv_len2"]).clamp_(0.0, 1.0)
    e = torch.addcmul(r, t, c["d2"], value=-1)  # rx - t dx, ry - t dy (fused, as the rule's)
    ex, ey = e[0], e[1]
    d = torch.addcmul(ex * ex, ey, ey).sqrt_()
    m = torch.empty(d.shape[1:], dtype=d.dtype).numpy()  # torch's (aligned) memory: see _stop_at_walls_numpy
    return d, np.minimum.reduce(d.numpy(), axis=0, out=m)


#: Agents x walls above which :class:`_NearWalls` measures only the agents near a wall.
#: Below it the bookkeeping (a gather and scatters per step) costs more than it saves.
NEAR_WALLS_MIN_ELEMENTS = 16384


def _filter_rows(pos: torch.Tensor, walls: dict) -> bool:
    """Whether :class:`_NearWalls` should skip far agents (large batches)."""
    return (pos.numel() // 2) * (walls["n_segments"] + (walls["radius"] is not None)) >= NEAR_WALLS_MIN_ELEMENTS


class _NearWalls:
    """Wall distances of the agents that a wall can affect this step, skipping the rest.

    The distance to the nearest wall is 1-Lipschitz in position: an agent measured at its
    anchor ``a`` at distance ``d0`` is at least ``d0 - |x - a|`` from every wall at ``x``.
    This bound, lowered by ``slack`` for float rounding, is compared with ``reach`` (the
    distance within which the wall rules or the step can act); agents whose bound clears it
    are not measured and get distance +inf, which every rule treats exactly as it treats
    their true distance (no turn, no slowing, no repulsion, no crossing test), so skipping
    never changes a trajectory. Measured agents take their position as the new anchor.
    With ``enabled`` False (small batches) every agent is measured every step. With
    ``wall_major`` (CPU, straight walls, agents x walls >= ``WALL_MAJOR_MIN_ELEMENTS``)
    the distances are (S, K) (:func:`_wall_distances_t`) and the bookkeeping is NumPy.

    Shapes: ``pos`` (..., 2), flattened to N = prod(...) agents; ``reach`` (...) or a float
    (unused, and may be None, when disabled).
    """

    def __init__(self, walls: dict, pos: torch.Tensor, enabled: bool):
        self.walls, self.enabled = walls, enabled
        n = pos.numel() // 2
        self.wall_major = _wall_major(walls) and n * walls["n_segments"] >= WALL_MAJOR_MIN_ELEMENTS
        self.anchor: Any = pos.reshape(n, 2).clone()  # a NumPy array on the wall-major path
        self.d0: Any = torch.full((n,), -math.inf, dtype=pos.dtype, device=pos.device)  # nobody measured yet
        if self.wall_major:  # CPU: the bookkeeping in NumPy (the bound is conservative, see slack)
            self.anchor, self.d0 = self.anchor.numpy(), self.d0.numpy()
        size = max(abs(float(e)) for e in walls["extent"]) + (walls["radius"] or 0.0)
        eps = torch.finfo(pos.dtype).eps
        self.slack = 1024 * eps * (1.0 + size)  # >> the rounding of |x - a|, d0 and d(x)
        self.rel = 1.0 + 64 * eps  # a computed step's length is at most rel x its nominal length

    def _rows(self, P: np.ndarray, reach: Any) -> np.ndarray:
        """Wall-major path: flat indices (K,) of the agents at ``P`` (N, 2) that may be within ``reach``."""
        gap = P - self.anchor
        gap *= gap
        bound = self.d0 - np.sqrt(gap[:, 0] + gap[:, 1])
        reach = reach.reshape(-1).numpy() if isinstance(reach, torch.Tensor) else reach
        return np.flatnonzero(bound < reach + self.slack)

    def measure(self, pos: torch.Tensor, reach: torch.Tensor | float | None):
        """Measure the agents within ``reach`` of a wall (or all of them when disabled).

        Returns ``(idx, p, dists, nearest)``: ``idx`` (K,) flat agent indices or None for
        all agents (then the others keep the leading shape of ``pos``), their positions
        ``p`` (K, 2), distances to every wall ``dists`` (K, W) and ``nearest``, the
        ``(values, indices)`` of ``dists.min(dim=-1)`` (indices None on the wall-major path).
        """
        if self.wall_major:
            flat = pos.reshape(-1, 2)
            if not self.enabled:
                d, values = _wall_distances_t(flat, self.walls)
                lead = pos.shape[:-1]
                dists = torch.from_numpy(np.ascontiguousarray(d.numpy().T)).view(lead + d.shape[:1])
                return None, pos, dists, _Nearest(torch.from_numpy(values).view(lead), None)
            P = flat.numpy()
            i = self._rows(P, reach)
            p = torch.from_numpy(P[i])
            d, values = _wall_distances_t(p, self.walls)
            self.anchor[i] = P[i]
            self.d0[i] = values
            return torch.from_numpy(i), p, torch.from_numpy(np.ascontiguousarray(d.numpy().T)), _Nearest(torch.from_numpy(values), None)
        if not self.enabled:
            dists = _wall_distances(pos, self.walls)
            return None, pos, dists, dists.min(dim=-1)
        flat = pos.reshape(-1, 2)
        bound = self.d0 - torch.linalg.vector_norm(flat - self.anchor, dim=-1)
        assert reach is not None, "reach is needed when enabled"
        reach = reach.reshape(-1) if isinstance(reach, torch.Tensor) else reach
        idx = (bound < reach + self.slack).nonzero().squeeze(1)
        p = flat[idx]
        dists = _wall_distances(p, self.walls)
        nearest = dists.min(dim=-1)
        self.anchor.index_copy_(0, idx, p)
        self.d0.index_copy_(0, idx, nearest.values)
        return idx, p, dists, nearest

    def nearest(self, pos: torch.Tensor, reach: torch.Tensor | float | None,
                need: float = math.inf) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`_nearest_wall_arena` of every agent, (...) each: +inf and 0 for skipped agents.

        On the wall-major path the normal is looked up only for agents nearer than ``need``
        (the range of the rule that uses it) and is 0 for the others, like a skipped agent's;
        the nearest wall is the first of tied minima, as torch's ``min`` returns it.
        """
        if not self.wall_major:
            idx, p, dists, nearest = self.measure(pos, reach)
            d_wall, normal = _nearest_wall_arena(p, self.walls, dists, nearest)
            return self.spread(idx, d_wall, pos, math.inf), self.spread(idx, normal, pos, 0.0)
        flat: Any = pos.reshape(-1, 2)
        if self.enabled:
            P = flat.numpy()
            i = self._rows(P, reach)
            flat = torch.from_numpy(P[i])
        d, vals = _wall_distances_t(flat, self.walls)
        sel = np.flatnonzero(vals < need)
        angle = torch.zeros(vals.shape, dtype=d.dtype).numpy()
        if sel.size:
            angle[sel] = self.walls["numpy"]["normal_angle"][d.numpy()[:, sel].argmin(axis=0)]
        if self.enabled:
            self.anchor[i] = P[i]
            self.d0[i] = vals
            d_all = torch.full((len(P),), math.inf, dtype=d.dtype).numpy()
            n_all = torch.zeros(len(P), dtype=d.dtype).numpy()
            d_all[i], n_all[i] = vals, angle
            vals, angle = d_all, n_all
        lead = pos.shape[:-1]
        return torch.from_numpy(vals).view(lead), torch.from_numpy(angle).view(lead)

    @staticmethod
    def spread(idx: torch.Tensor | None, values: torch.Tensor, like: torch.Tensor, fill: float) -> torch.Tensor:
        """Values (K, ...) of the measured agents into a tensor shaped ``like`` (..., ...), ``fill`` elsewhere."""
        if idx is None:
            return values
        out = torch.full((like.numel() // like.shape[-1],) + tuple(values.shape[1:]), fill,
                         dtype=values.dtype, device=values.device)
        return out.index_copy_(0, idx, values).reshape(like.shape[:-1] + values.shape[1:])

def _cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _stop_at_walls(pos: torch.Tensor, step: torch.Tensor, walls: dict, arena: Arena,
                   d_wall: torch.Tensor | None = None) -> torch.Tensor:
    """``pos + step`` cut short ``WALL_MARGIN`` before the first wall the step crosses.

    Only agents whose step is at least as long as their distance to the nearest wall
    (``d_wall``) can reach a wall; for them (a gathered subset) the step is intersected
    with every wall segment (``pos + u step = a + v d``, u, v in [0, 1]) and with a
    circle's wall, and a step whose end would still fall outside the arena (rounding at
    grazing angles) is not taken. So a trajectory that starts inside never leaves, and
    never passes through a hole or a thin interior wall.
    """
    if d_wall is None:
        d_wall = _wall_distances(pos, walls).min(dim=-1).values
    if "numpy" in walls and walls["radius"] is None and _NUMPY_CROSSING:
        return _stop_at_walls_numpy(pos, step, walls, d_wall)
    new = pos + step
    reach = (step * step).sum(-1) >= (d_wall - WALL_MARGIN).clamp(min=0) ** 2
    idx = reach.reshape(-1).nonzero().squeeze(1)
    if idx.numel() == 0:
        return new
    p, s = pos.reshape(-1, 2)[idx], step.reshape(-1, 2)[idx]
    u = torch.full(idx.shape, float("inf"), dtype=pos.dtype, device=pos.device)
    if walls["n_segments"]:
        a, d = walls["a"], walls["d"]
        s_ = s[:, None, :]
        denom = _cross2(s_, d)  # (K, S)
        ok = denom.abs() > 1e-20
        safe = torch.where(ok, denom, torch.ones_like(denom))
        ap = a - p[:, None, :]
        uu, vv = _cross2(ap, d) / safe, _cross2(ap, s_) / safe
        hit = ok & (uu >= 0) & (uu <= 1) & (vv >= 0) & (vv <= 1)
        u = torch.where(hit, uu, u[:, None]).min(dim=-1).values
    if walls["radius"] is not None:
        A = (s * s).sum(-1)
        B = (p * s).sum(-1)
        C = (p * p).sum(-1) - walls["radius"] ** 2
        uc = (-B + torch.sqrt((B * B - A * C).clamp(min=0))) / torch.where(A > 0, A, torch.ones_like(A))
        u = torch.minimum(u, torch.where((A > 0) & (uc <= 1), uc, torch.full_like(uc, float("inf"))))
    length = s.norm(dim=-1).clamp(min=1e-30)
    frac = torch.where(u <= 1, (u - WALL_MARGIN / length).clamp(0.0, 1.0), torch.ones_like(u))
    sub = p + s * frac[:, None]
    sub = torch.where(arena.contains(sub)[:, None], sub, p)
    return new.reshape(-1, 2).index_copy(0, idx, sub).reshape(pos.shape)



#: Run :func:`_stop_at_walls` on CPU tensors through :func:`_stop_at_walls_numpy` (same result).
_NUMPY_CROSSING = True


def _stop_at_walls_numpy(pos: torch.Tensor, step: torch.Tensor, walls: dict, d_wall: torch.Tensor) -> torch.Tensor:
    """:func:`_stop_at_walls` for CPU tensors of a straight-walled arena, in NumPy.

    The same float operations in the same order (IEEE sums, products, quotients and
    comparisons in the tensors' dtype; the step length by torch's own norm, which fuses a
    multiply-add; ``m / L`` as torch computes it, ``(1 / L) * m``), so the result is
    bit-identical (tests/test_arenas.py compares both paths with a reference copy of the
    rule). The crossing test runs on the few agents within a step of a wall ((S, K)
    arrays, K ~ 5% of B), where a NumPy call costs a fraction of a torch call; this is most
    of the arena's speed-up (bench/arenas.py). A step that crosses no wall ends at
    ``pos + step`` exactly as ``pos + step * 1`` did.

    Shapes: ``pos``, ``step`` (..., 2); ``d_wall`` (...) the distance to the nearest wall
    (+inf for an agent known to be out of reach). Returns the new positions (..., 2).
    """
    w = walls["numpy"]
    c = w["columns"]
    ax, ay, dx, dy = c["ax"], c["ay"], c["dx"], c["dy"]  # (S, 1): (S, K) arrays below, agents along the fast axis
    P, V = pos.reshape(-1, 2).numpy(), step.reshape(-1, 2).numpy()  # (B, 2)
    # the sum in torch (P + V alike) and NumPy writing into its memory: the next steps'
    # torch ops run measurably slower on NumPy-allocated arrays (alignment)
    new = (pos + step).contiguous()
    out = new.view(-1, 2).numpy()  # shares memory with ``new``
    vv = V * V
    reach = vv[:, 0] + vv[:, 1] >= np.square(np.maximum(d_wall.reshape(-1).numpy() - WALL_MARGIN, 0))
    idx = np.flatnonzero(reach)
    if idx.size == 0:
        return new
    p, s, sub = P[idx], V[idx], out[idx]  # (K, 2)
    px, py, sx, sy = p[:, 0], p[:, 1], s[:, 0], s[:, 1]  # (K,)
    # pos + u step = a + v d with u, v in [0, 1]: u = (a - p) x d / (s x d), v = (a - p) x s / (s x d)
    denom = sx * dy - sy * dx  # (S, K)
    safe = np.where(np.abs(denom) > 1e-20, denom, np.nan)  # parallel: u, v NaN, never a hit
    apx, apy = ax - px, ay - py
    u = (apx * dy - apy * dx) / safe
    v = (apx * sy - apy * sx) / safe
    # the first wall along the step: the least u >= 0 with v in [0, 1]; it is the least
    # u in [0, 1] (the rule's) whenever one is <= 1, the only case used below
    first = np.minimum.reduce(np.where((u >= 0) & (v >= 0) & (v <= 1), u, np.inf), axis=0)  # (K,)
    k = np.flatnonzero(first <= 1)  # steps that meet a wall stop WALL_MARGIN before it
    if k.size:
        length = np.maximum(torch.linalg.vector_norm(torch.from_numpy(s[k]), dim=-1).numpy(), 1e-30)
        back = np.minimum(np.maximum(first[k] - np.reciprocal(length) * WALL_MARGIN, 0.0), 1.0)
        sub[k] = p[k] + s[k] * back[:, None]
    # rounding at grazing angles: a step whose end is outside is not taken. The even-odd
    # test of Arena.contains (gridsweep.arenas._even_odd), edges along axis 0, parity by xor
    yi, yj, xi, slope = w["edge_rows"]  # (E, 1) each
    x, y = sub[:, 0], sub[:, 1]
    inside = np.logical_xor.reduce(((yi > y) != (yj > y)) & (x < xi + (y - yi) * slope), axis=0)
    out[idx] = np.where(inside[:, None], sub, p)
    return new

def _finish(pos: torch.Tensor, box: BoxConfig, cfg: TrajectoryConfig) -> torch.Tensor:
    if box.boundary == "periodic":
        return _wrap_to_box(pos, box)
    if cfg.contain:
        return _clip_to_box(pos, box)
    return pos


def _integrate_sorscher(noise: dict[str, torch.Tensor], cfg: TrajectoryConfig, box: BoxConfig) -> Trajectories:
    pos = noise["start"]
    hd = noise["heading"]
    steps = noise["turn"].shape[-1]
    dt = cfg.dt
    arena = _arena(box)
    walls = None if arena is None else arena.torch_walls(pos.device, pos.dtype)
    kernel = None if walls is None or arena is None else arena_kernel.kernel_for(arena, walls)
    near_walls: Any = None if walls is None or kernel is not None else _NearWalls(walls, pos, _filter_rows(pos, walls))
    vels, poss, hds = [], [], []
    for t in range(steps):
        speed = noise["speed"][..., t]
        turn = dt * noise["turn"][..., t]
        if box.boundary == "solid":
            if walls is None:
                d_wall, normal = _nearest_wall(pos, box)
            elif kernel is not None:  # one C call, then torch's sqrt and min (arena_kernel)
                d_wall, normal = _nearest_wall_arena(pos, walls, kernel.distances(pos))
            else:  # the wall rule acts within wall_distance, a step reaches at most speed dt
                reach = (torch.clamp(speed * (dt * near_walls.rel) + WALL_MARGIN, min=cfg.wall_distance)
                         if near_walls.enabled else None)
                d_wall, normal = near_walls.nearest(pos, reach, cfg.wall_distance)
            d_here = d_wall
            a_wall = _wrap_angle(hd - normal)
            near = (d_wall < cfg.wall_distance) & (a_wall.abs() < math.pi / 2)
            wall_turn = torch.sign(a_wall) * (math.pi / 2 - a_wall.abs())
            turn = turn + torch.where(near, wall_turn, torch.zeros_like(wall_turn))
            speed = torch.where(near, speed * cfg.wall_speed_factor, speed)
        step = (speed * dt).unsqueeze(-1) * torch.stack([torch.cos(hd), torch.sin(hd)], dim=-1)
        new = (_finish(pos + step, box, cfg) if walls is None or arena is None  # None together
               else kernel.stop(pos, step, d_here, WALL_MARGIN) if kernel is not None
               else _stop_at_walls(pos, step, walls, arena, d_here))
        # With periodic walls the input is the raw displacement, not the wrapped jump.
        vels.append(step if box.boundary == "periodic" else new - pos)
        poss.append(new)
        hds.append(_wrap_angle(hd))
        pos = new
        hd = hd + turn
    return Trajectories(
        velocities=torch.stack(vels, dim=-2),
        start=noise["start"],
        positions=torch.stack(poss, dim=-2),
        headings=torch.stack(hds, dim=-1),
    )


def _integrate_ou(noise: dict[str, torch.Tensor], cfg: TrajectoryConfig, box: BoxConfig) -> Trajectories:
    """Euler-Maruyama OU speed and rotation with soft wall repulsion.

    Notes
    -----
    RatInABox-style (George et al. 2024): speed and rotational velocity follow OU
    processes with the given means, standard deviations and coherence times; near a wall
    (distance d < ``ou_wall_repel_distance``) the velocity component towards the wall is
    scaled by d / distance, so it vanishes at the wall. This is a re-derivation from the
    described behaviour, not a copy of RatInABox's update.

    Both OU updates are RatInABox's (``utils.ornstein_uhlenbeck``, utils.py:347-368:
    ``x += -x dt / tau + s sqrt(2 dt / tau) N(0, 1)``, so the stationary std is
    ``s / sqrt(1 - dt / (2 tau))``); the rotational velocity is in rad/s in both.
    The speed differs by ``ou_speed_model``: ``"normal"`` (the original) runs the OU on
    the speed itself, mean ``ou_speed_mean``, std ``ou_speed_std``, reflected at 0 (so
    the mean speed is that of a folded normal, 0.093 m/s at the defaults);
    ``"ratinabox"`` runs a unit OU on a latent normal z and sets the speed to
    ``Rayleigh(ou_speed_mean)`` quantile of z, as RatInABox's Agent does in 2D
    (Agent.py:268-318, where ``speed_std`` only matters when it is 0: constant speed);
    the mean speed is then ``ou_speed_mean sqrt(pi / 2)`` (0.100 m/s at the defaults).
    Walls differ from RatInABox in both modes (RatInABox: spring and conveyor-belt
    repulsion with ``thigmotaxis``; docs/arenas.md).

    In an arena other than the rectangle the same rule runs wall by wall (vectorised over
    the batch and the segments, :func:`_repel_arena`): d is the distance to the segment and
    the component along the segment's normal pointing into the wall is scaled; for the
    box's four orthogonal walls this is the per-axis rule above. Agents farther than the
    repel distance and their step from every wall are skipped (:class:`_NearWalls`), which
    changes no number.
    """
    pos = noise["start"]
    hd = noise["heading"]
    speed = noise["speed0"]
    rot = torch.zeros_like(hd)
    dt = cfg.dt
    steps = noise["speed_noise"].shape[-1]
    a_s = dt / cfg.ou_speed_coherence_time
    a_r = dt / cfg.ou_rotation_coherence_time
    hw, hh = box.width / 2, box.height / 2
    arena = _arena(box)
    walls = None if arena is None else arena.torch_walls(pos.device, pos.dtype)
    kernel = None if walls is None or arena is None else arena_kernel.kernel_for(arena, walls)
    near_walls: Any = None if walls is None or kernel is not None else _NearWalls(walls, pos, _filter_rows(pos, walls))
    rayleigh = cfg.ou_speed_model == "ratinabox"
    if rayleigh:
        z = _rayleigh_to_normal(speed, cfg.ou_speed_mean)
    vels, poss, hds = [], [], []
    for t in range(steps):
        if rayleigh:
            z = z - a_s * z + math.sqrt(2 * a_s) * noise["speed_noise"][..., t]
            speed = (_normal_to_rayleigh(z, cfg.ou_speed_mean) if cfg.ou_speed_std > 0
                     else torch.full_like(z, cfg.ou_speed_mean))
        else:
            speed = (speed + a_s * (cfg.ou_speed_mean - speed)
                     + cfg.ou_speed_std * math.sqrt(2 * a_s) * noise["speed_noise"][..., t]).abs()
        rot = rot - a_r * rot + cfg.ou_rotation_std * math.sqrt(2 * a_r) * noise["rotation_noise"][..., t]
        hd = hd + rot * dt
        v = speed.unsqueeze(-1) * torch.stack([torch.cos(hd), torch.sin(hd)], dim=-1)
        if kernel is not None:  # one C call, torch's sqrt and min; repulsion of the agents it can reach
            rd = cfg.ou_wall_repel_distance
            dists = kernel.distances(pos)
            d_wall = dists.amin(dim=-1)
            if rd > 0:
                v = kernel.repel(v, dists, d_wall, rd)
        elif walls is not None:  # repulsion acts within the repel distance, a step reaches speed dt
            rd = cfg.ou_wall_repel_distance
            reach = torch.clamp(speed * (dt * near_walls.rel) + WALL_MARGIN, min=rd) if near_walls.enabled else None
            idx, p, dists, nearest = near_walls.measure(pos, reach)
            if rd > 0:
                v_near = _repel_arena(p, v if idx is None else v.reshape(-1, 2)[idx], walls, rd, dists)
                v = v_near if idx is None else v.reshape(-1, 2).index_copy(0, idx, v_near).reshape(v.shape)
            d_wall = near_walls.spread(idx, nearest.values, pos, math.inf)
        elif cfg.ou_wall_repel_distance > 0:
            rd = cfg.ou_wall_repel_distance
            x, y = pos[..., 0], pos[..., 1]
            fx_pos = torch.clamp((hw - x) / rd, 0.0, 1.0)  # scale of +x motion
            fx_neg = torch.clamp((hw + x) / rd, 0.0, 1.0)
            fy_pos = torch.clamp((hh - y) / rd, 0.0, 1.0)
            fy_neg = torch.clamp((hh + y) / rd, 0.0, 1.0)
            vx = torch.where(v[..., 0] > 0, v[..., 0] * fx_pos, v[..., 0] * fx_neg)
            vy = torch.where(v[..., 1] > 0, v[..., 1] * fy_pos, v[..., 1] * fy_neg)
            v = torch.stack([vx, vy], dim=-1)
        new = (_clip_to_box(pos + v * dt, box) if walls is None or arena is None  # None together
               else _stop_at_walls(pos, v * dt, walls, arena, d_wall))
        step = new - pos
        hd = torch.where(step.norm(dim=-1) > 0, torch.atan2(step[..., 1], step[..., 0]), hd)
        vels.append(step)
        poss.append(new)
        hds.append(_wrap_angle(hd))
        pos = new
    return Trajectories(
        velocities=torch.stack(vels, dim=-2),
        start=noise["start"],
        positions=torch.stack(poss, dim=-2),
        headings=torch.stack(hds, dim=-1),
    )


def _repel_arena(pos: torch.Tensor, v: torch.Tensor, walls: dict, rd: float, dists: torch.Tensor) -> torch.Tensor:
    """Scale the velocity component into each wall closer than ``rd`` by distance / rd.

    All walls at once: ``v - sum_w [v.n_w > 0] (v.n_w) (1 - min(d_w / rd, 1)) n_w`` with
    ``n_w`` the normal into wall w (for a circle, along the position). For walls with
    orthogonal normals (the box) this is the original per-axis rule.
    """
    nx, ny = walls["nx"], walls["ny"]
    if walls["radius"] is not None:
        r = pos.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        cx, cy = pos[..., 0:1] / r, pos[..., 1:2] / r
        nx = torch.cat([nx.expand(cx.shape[:-1] + nx.shape), cx], -1) if walls["n_segments"] else cx
        ny = torch.cat([ny.expand(cy.shape[:-1] + ny.shape), cy], -1) if walls["n_segments"] else cy
    dists = dists.contiguous()  # agent-major in memory, so the sums below add in the rule's order
    vn = v[..., 0:1] * nx + v[..., 1:2] * ny  # (..., W)
    k = vn.clamp(min=0) * (1 - (dists / rd).clamp(0.0, 1.0))
    return v - torch.stack([(k * nx).sum(-1), (k * ny).sum(-1)], dim=-1)


MOTION_MODELS = {"sorscher": _integrate_sorscher, "ou": _integrate_ou}


def integrate(noise: dict[str, torch.Tensor], cfg: TrajectoryConfig, box: BoxConfig) -> Trajectories:
    """Turn sampled noise into trajectories (deterministic; any leading batch shape)."""
    return MOTION_MODELS[cfg.motion](noise, cfg, box)


def generate(
    gens: torch.Generator | Sequence[torch.Generator],
    cfg: TrajectoryConfig,
    box: BoxConfig,
    *,
    batch: int | None = None,
    steps: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> Trajectories:
    """Sample a batch of trajectories.

    Parameters
    ----------
    gens : torch.Generator or sequence of E generators
        One generator gives tensors of shape (B, ...); a sequence gives (E, B, ...),
        network e drawing only from ``gens[e]``.
    cfg, box : TrajectoryConfig, BoxConfig
    batch, steps : int, optional
        Default to ``cfg.batch_size`` and ``cfg.sequence_length``.

    Returns
    -------
    Trajectories
        velocities (…, B, T, 2), start (…, B, 2), positions (…, B, T, 2),
        headings (…, B, T) on the generators' device.

    Examples
    --------
    >>> import torch
    >>> from gridsweep.config import TrajectoryConfig, BoxConfig
    >>> g = torch.Generator().manual_seed(0)
    >>> traj = generate(g, TrajectoryConfig(), BoxConfig(), batch=4, steps=10)
    >>> tuple(traj.positions.shape)
    (4, 10, 2)
    """
    batch = cfg.batch_size if batch is None else batch
    steps = cfg.sequence_length if steps is None else steps
    if isinstance(gens, torch.Generator):
        return integrate(sample_noise(gens, batch, steps, cfg, box, dtype=dtype), cfg, box)
    return integrate(ensemble_noise(gens, batch, steps, cfg, box, dtype=dtype), cfg, box)


def ensemble_noise(gens: Sequence[torch.Generator], batch: int, steps: int, cfg: TrajectoryConfig,
                   box: BoxConfig, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """:func:`sample_noise` of each generator in turn, stacked: arrays (E, B, ...) for E generators."""
    noises = [sample_noise(g, batch, steps, cfg, box, dtype=dtype) for g in gens]
    return {k: torch.stack([n[k] for n in noises]) for k in noises[0]}
