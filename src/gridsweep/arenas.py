"""Arena geometry: rectangles, circles, simple polygons, and holes (interior walls).

The arena of a run is the ``box`` section of its config (:class:`gridsweep.config.BoxConfig`,
docs/science.md section 2). This module turns that section into an :class:`Arena`, the
geometry the rest of gridsweep reads:

* its wall segments with the normal of each wall pointing *into* the wall (for the motion
  models' wall avoidance and repulsion, :mod:`gridsweep.trajectories`),
* point-in-arena tests (numpy arrays or torch tensors),
* uniform sampling of points inside the arena by rejection from a seeded stream (start
  positions, place-cell centres),
* the mask of rate-map bins whose centre lies inside (:mod:`gridsweep.analysis.ratemaps`).

Shapes (``box.shape``):

``rectangle``
    ``width`` x ``height`` centred at the origin (the original square box of Sorscher et al.
    and NFL; trajectories of this shape are unchanged, bit for bit).
``circle``
    ``radius``, centred at the origin; its wall is exact (no polygon approximation).
``polygon``
    Any simple (non-self-intersecting) polygon given by ``vertices`` in metres, in either
    orientation; the centre of its bounding box must be the origin.
``krupic_trapezoid``
    The trapezoid of Krupic, Bauza, Burton, Barry & O'Keefe (Nature 518, 232-235, 2015):
    :data:`KRUPIC2015_TRAPEZOID` (long axis along x, wide end at -x).

``holes`` are polygons inside the arena that the animal cannot enter (pillars, interior
walls: a thin wall is a thin rectangle, see :func:`wall_hole`).

Everything here is pure geometry, numpy in and numpy out (or torch where noted); no
config is imported at module level so :mod:`gridsweep.config` can validate with it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from gridsweep.errors import ConfigError

__all__ = [
    "KRUPIC2015_TRAPEZOID",
    "Arena",
    "arena_of",
    "krupic_trapezoid_vertices",
    "wall_hole",
    "polygon_area",
    "polygon_self_intersects",
    "points_in_polygon",
    "arena_problem",
    "SHAPES",
]

SHAPES = ("rectangle", "circle", "polygon", "krupic_trapezoid")

#: Krupic et al. (2015) trapezoid, metres: 190 cm long, 90 cm at the wide end, 20 cm at the
#: narrow end (Methods of Krupic, Bauza, Burton, Barry & O'Keefe, Nature 518:232, 2015; their
#: square was 90 x 90 cm). Numbers as recalled from the paper's Methods, UNVERIFIED: no copy of
#: the Methods was found in the sources searched (2026-11-30); see docs/arenas.md.
KRUPIC2015_TRAPEZOID = {"length": 1.9, "wide": 0.9, "narrow": 0.2}


def krupic_trapezoid_vertices(length: float = KRUPIC2015_TRAPEZOID["length"],
                              wide: float = KRUPIC2015_TRAPEZOID["wide"],
                              narrow: float = KRUPIC2015_TRAPEZOID["narrow"]) -> tuple[tuple[float, float], ...]:
    """Vertices (counter-clockwise) of an isosceles trapezoid whose bounding box is centred.

    The long axis is x; the wide parallel side (``wide``) is at ``x = -length / 2``, the
    narrow one at ``x = +length / 2``.
    """
    L, W, N = float(length), float(wide), float(narrow)
    return ((-L / 2, -W / 2), (L / 2, -N / 2), (L / 2, N / 2), (-L / 2, W / 2))


def wall_hole(a: Sequence[float], b: Sequence[float], thickness: float = 0.02) -> tuple[tuple[float, float], ...]:
    """An interior wall from ``a`` to ``b`` as a thin rectangular hole of ``thickness`` metres."""
    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    d = b_ - a_
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-12) * thickness / 2
    return tuple((float(p[0]), float(p[1])) for p in (a_ - n, b_ - n, b_ + n, a_ + n))


# ---------------------------------------------------------------------------------------
# polygon primitives
# ---------------------------------------------------------------------------------------
def polygon_area(vertices: Any) -> float:
    """Signed area (shoelace formula), positive for counter-clockwise vertices, (n, 2) -> float."""
    v = np.asarray(vertices, dtype=float)
    x, y = v[:, 0], v[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _segments_cross(p1, p2, q1, q2, eps: float = 1e-12) -> np.ndarray:
    """Whether segments p1p2 and q1q2 intersect (touching counts), broadcast over leading axes."""
    d1 = _cross(p2 - p1, q1 - p1)
    d2 = _cross(p2 - p1, q2 - p1)
    d3 = _cross(q2 - q1, p1 - q1)
    d4 = _cross(q2 - q1, p2 - q1)
    proper = (d1 * d2 < -eps) & (d3 * d4 < -eps)

    def on(a, b, c, d):  # c collinear with ab and within its bounding box
        return (np.abs(d) <= eps) & (np.minimum(a[..., 0], b[..., 0]) - eps <= c[..., 0]) & \
            (c[..., 0] <= np.maximum(a[..., 0], b[..., 0]) + eps) & \
            (np.minimum(a[..., 1], b[..., 1]) - eps <= c[..., 1]) & (c[..., 1] <= np.maximum(a[..., 1], b[..., 1]) + eps)

    return proper | on(p1, p2, q1, d1) | on(p1, p2, q2, d2) | on(q1, q2, p1, d3) | on(q1, q2, p2, d4)


def _edges(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return v, np.roll(v, -1, axis=0)


def polygon_self_intersects(vertices: Any) -> bool:
    """Whether any two non-adjacent edges of the closed polygon touch or cross.

    Also true for repeated vertices (zero-length edges).
    """
    v = np.asarray(vertices, dtype=float)
    n = len(v)
    a, b = _edges(v)
    if np.any(np.hypot(*(b - a).T) <= 1e-12):
        return True
    i, j = np.triu_indices(n, k=2)
    keep = ~((i == 0) & (j == n - 1))  # first and last edges are adjacent
    i, j = i[keep], j[keep]
    return bool(_segments_cross(a[i], b[i], a[j], b[j]).any())


def points_in_polygon(points: Any, vertices: Any):
    """Even-odd test of points against a polygon; numpy arrays or torch tensors.

    Parameters
    ----------
    points : ndarray or Tensor, (..., 2)
    vertices : (n, 2) array_like (numbers)

    Returns
    -------
    bool ndarray or Tensor, (...)

    Notes
    -----
    Crossing-number (ray casting) test, vectorised over points and edges at once.
    Points exactly on an edge are classified arbitrarily (measure zero).
    """
    v = np.asarray(vertices, dtype=float)
    return _even_odd(points, _edge_table(np.stack(_edges(v), axis=1)))


def _edge_table(segs: np.ndarray) -> np.ndarray:
    """(4, S) rows ``y_i, y_j, x_i, dx/dy`` of edges for :func:`_even_odd` (horizontal: dx/dy = 0)."""
    (xi, yi), (xj, yj) = segs[:, 0].T, segs[:, 1].T
    dy = yj - yi
    slope = np.where(dy != 0, (xj - xi) / np.where(dy != 0, dy, 1.0), 0.0)
    return np.stack([yi, yj, xi, slope])


def _even_odd(points: Any, table: Any):
    """Odd number of edge crossings of a ray to +x from each point; numpy or torch."""
    if not isinstance(points, np.ndarray) and isinstance(table, np.ndarray):  # torch points: torch edges
        import torch

        table = torch.as_tensor(table, dtype=points.dtype, device=points.device)
    yi, yj, xi, slope = table[0], table[1], table[2], table[3]
    x, y = points[..., 0:1], points[..., 1:2]
    straddle = (yi > y) != (yj > y)
    crossing = straddle & (x < xi + (y - yi) * slope)
    return (crossing.sum(-1) % 2) == 1


# ---------------------------------------------------------------------------------------
# the arena
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Arena:
    """The geometry of one arena.

    Attributes
    ----------
    outer : ndarray (n, 2) or None
        Outer wall polygon, counter-clockwise; None for a circle.
    radius : float or None
        Radius of a circular arena (centred at the origin).
    holes : tuple of ndarray (m, 2)
        Obstacles, each clockwise (so every wall's right-hand normal points into the wall).
    extent : tuple of 4 floats
        Bounding box ``(xmin, xmax, ymin, ymax)``, metres.
    rectangular : bool
        The original box (rectangle without holes): motion models take their original code.
    """

    outer: np.ndarray | None
    radius: float | None
    holes: tuple[np.ndarray, ...]
    extent: tuple[float, float, float, float]
    rectangular: bool

    # walls -----------------------------------------------------------------------------
    @functools.cached_property
    def segments(self) -> np.ndarray:
        """Straight wall segments, (S, 2, 2): ``[s, 0]`` start, ``[s, 1]`` end.

        Walking from start to end, the free space is on the left; the right-hand normal
        ``(dy, -dx)`` points into the wall. The circle's wall is not among them.
        """
        polys = ([self.outer] if self.outer is not None else []) + list(self.holes)
        segs = [np.stack(_edges(p), axis=1) for p in polys]
        return np.concatenate(segs, axis=0) if segs else np.zeros((0, 2, 2))

    @functools.cached_property
    def normals(self) -> np.ndarray:
        """Unit normals of :attr:`segments` pointing into the wall, (S, 2)."""
        d = self.segments[:, 1] - self.segments[:, 0]
        n = np.stack([d[:, 1], -d[:, 0]], axis=-1)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

    @property
    def n_walls(self) -> int:
        """Straight walls plus one for a circle's wall."""
        return len(self.segments) + (self.radius is not None)

    # areas and membership --------------------------------------------------------------
    @functools.cached_property
    def area(self) -> float:
        """Free area in m^2 (outer area minus holes)."""
        outer = math.pi * self.radius**2 if self.radius is not None else abs(polygon_area(self.outer))
        return outer - sum(abs(polygon_area(h)) for h in self.holes)

    def contains(self, points: Any):
        """Whether points lie in the free space: inside the outer wall and outside every hole.

        ``points`` (..., 2) numpy array or torch tensor -> bool (...) of the same kind.
        """
        table = self._edge_table
        if not isinstance(points, np.ndarray):
            table = self._torch_table(points.device, points.dtype)
        # even-odd over outer and hole edges together: inside the outer wall XOR inside a
        # hole (holes are strictly inside and disjoint)
        odd = _even_odd(points, table) if table.shape[1] else None
        if self.radius is None:
            return odd
        inside = points[..., 0] ** 2 + points[..., 1] ** 2 < self.radius**2
        return inside if odd is None else inside & ~odd

    @functools.cached_property
    def _edge_table(self) -> np.ndarray:
        return _edge_table(self.segments)

    def _torch_table(self, device, dtype):
        import torch

        key = (str(device), dtype)
        cache = self.__dict__.setdefault("_torch_tables", {})
        if key not in cache:
            cache[key] = torch.as_tensor(self._edge_table, device=device, dtype=dtype)
        return cache[key]

    def mask(self, extent: Sequence[float], nx: int, ny: int) -> np.ndarray:
        """Bins of a regular grid on ``extent`` whose centre is inside, (ny, nx) bool (row = y)."""
        x0, x1, y0, y1 = (float(v) for v in extent)
        xs = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
        ys = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
        gx, gy = np.meshgrid(xs, ys, indexing="xy")
        return np.asarray(self.contains(np.stack([gx, gy], axis=-1)), dtype=bool)

    def sample_uniform(self, gen, n: int, *, shape: Sequence[int] | None = None, dtype=None, device=None):
        """``n`` points uniform in the free space by rejection from ``gen`` (a torch.Generator).

        Candidates are drawn uniform in the bounding box, x then y, in rounds of a size
        set by the acceptance ratio; accepted points are kept in draw order. Returns a
        Tensor (n, 2) (or ``(*shape, 2)`` with ``prod(shape) = n``). Deterministic given
        the generator's state.
        """
        import torch

        dtype = dtype or torch.float32
        device = device if device is not None else gen.device
        x0, x1, y0, y1 = self.extent
        frac = max(self.area / ((x1 - x0) * (y1 - y0)), 1e-3)
        out, have = [], 0
        while have < n:
            m = int(math.ceil((n - have) / frac * 1.2)) + 16
            u = torch.rand((2, m), generator=gen, device=device, dtype=dtype)
            pts = torch.stack([x0 + (x1 - x0) * u[0], y0 + (y1 - y0) * u[1]], dim=-1)
            pts = pts[self.contains(pts)]
            out.append(pts)
            have += len(pts)
        pts = torch.cat(out)[:n]
        return pts.reshape(*shape, 2) if shape is not None else pts

    def boundaries(self) -> list[np.ndarray]:
        """Closed polylines of every wall (for plotting), each (k, 2)."""
        if self.radius is not None:
            t = np.linspace(0, 2 * math.pi, 181)
            lines = [self.radius * np.stack([np.cos(t), np.sin(t)], -1)]
        elif self.outer is not None:
            lines = [np.vstack([self.outer, self.outer[:1]])]
        else:
            raise ConfigError("Arena has neither a radius nor an outer polygon")
        return lines + [np.vstack([h, h[:1]]) for h in self.holes]

    # torch helpers for the motion models ------------------------------------------------
    def torch_walls(self, device, dtype) -> dict[str, Any]:
        """Wall tensors on ``device`` for the motion models: ``a`` (S, 2) starts, ``d`` (S, 2)
        directions, their components ``ax, ay, dx, dy`` and ``inv_len2`` (S,), normals into
        the wall ``nx, ny`` (S,) and their angles ``normal_angle`` (S,), ``n_segments``,
        ``radius`` (None unless a circle), ``extent`` (bounding box); on a CPU device also
        ``numpy``: NumPy views of ``ax, ay, dx, dy`` (S,) and of the (4, S) edge table of
        :meth:`contains`, for the NumPy twin of the crossing test (gridsweep.trajectories);
        ``columns``: ``ax, ay, dx, dy, inv_len2`` as contiguous (S, 1) tensors, ``a2``, ``d2``
        (2, S, 1) (x and y stacked) and, under ``numpy``, the same as arrays plus
        ``normal_angle`` (S,) and the edge table's rows as (S, 1) arrays ``edge_rows``, for
        the wall-major (S, K) layout of the CPU path. Built once per device and dtype; treat
        it as read-only."""
        import torch

        key = (str(device), dtype)
        cache = self.__dict__.setdefault("_torch_walls", {})
        if key in cache:
            return cache[key]
        segs = torch.as_tensor(self.segments, device=device, dtype=dtype)
        n = torch.as_tensor(self.normals, device=device, dtype=dtype)
        a, d = segs[:, 0], segs[:, 1] - segs[:, 0]
        walls: dict[str, Any] = {"a": a, "d": d, "ax": a[:, 0], "ay": a[:, 1], "dx": d[:, 0], "dy": d[:, 1],
                 "inv_len2": 1.0 / (d * d).sum(-1), "nx": n[:, 0], "ny": n[:, 1],
                 "normal_angle": torch.atan2(n[:, 1], n[:, 0]), "n_segments": int(segs.shape[0]),
                 "radius": self.radius, "extent": self.extent}
        if segs.device.type == "cpu":
            walls["numpy"] = {k: walls[k].numpy() for k in ("ax", "ay", "dx", "dy")}
            walls["numpy"]["edge_table"] = self._torch_table(segs.device, dtype).numpy()
            walls["columns"] = {k: walls[k][:, None].contiguous() for k in ("ax", "ay", "dx", "dy", "inv_len2")}
            walls["columns"]["a2"], walls["columns"]["d2"] = (x.T[:, :, None].contiguous() for x in (a, d))
            walls["numpy"]["columns"] = {k: v.numpy() for k, v in walls["columns"].items()}
            walls["numpy"]["normal_angle"] = walls["normal_angle"].numpy()
            walls["numpy"]["edge_rows"] = tuple(r[:, None] for r in walls["numpy"]["edge_table"])
        cache[key] = walls
        return walls


def _orient(v: np.ndarray, ccw: bool) -> np.ndarray:
    return v if (polygon_area(v) > 0) == ccw else v[::-1].copy()


def _build(shape: str, width: float, height: float, radius: float | None,
           vertices: tuple | None, holes: tuple) -> Arena:
    hole_arrays = tuple(_orient(np.asarray(h, dtype=float), ccw=False) for h in holes)
    if shape == "circle":
        if radius is None:
            raise ConfigError("box.shape='circle' needs box.radius (metres)")
        r = float(radius)
        return Arena(None, r, hole_arrays, (-r, r, -r, r), False)
    if shape == "rectangle":
        w, h = width / 2, height / 2
        outer = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], dtype=float)
    elif shape == "krupic_trapezoid":
        outer = np.asarray(krupic_trapezoid_vertices(), dtype=float)
    else:
        outer = _orient(np.asarray(vertices, dtype=float), ccw=True)
    ext = (float(outer[:, 0].min()), float(outer[:, 0].max()), float(outer[:, 1].min()), float(outer[:, 1].max()))
    return Arena(outer, None, hole_arrays, ext, shape == "rectangle" and not holes)


@functools.lru_cache(maxsize=64)
def _cached(shape, width, height, radius, vertices, holes) -> Arena:
    return _build(shape, width, height, radius, vertices, holes)


def _freeze(v):
    return None if v is None else tuple(tuple(float(c) for c in p) for p in v)


def arena_of(box: Any) -> Arena:
    """The :class:`Arena` of a :class:`gridsweep.config.BoxConfig` (cached)."""
    shape = getattr(box, "shape", "rectangle")
    holes = tuple(_freeze(h) for h in getattr(box, "holes", ()) or ())
    return _cached(shape, float(box.width), float(box.height), getattr(box, "radius", None),
                   _freeze(getattr(box, "vertices", None)), holes)


# ---------------------------------------------------------------------------------------
# validation (called by BoxConfig; one line per problem)
# ---------------------------------------------------------------------------------------
def _polygon_problem(name: str, v: Any) -> str | None:
    try:
        arr = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        return f"{name}={v!r}: expected a list of [x, y] pairs in metres"
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 3:
        return f"{name}: expected at least 3 [x, y] vertices; got shape {arr.shape}"
    if not np.isfinite(arr).all():
        return f"{name}: vertices must be finite numbers"
    if polygon_self_intersects(arr):
        return f"{name}: the polygon is self-intersecting (or repeats a vertex); give a simple polygon"
    if abs(polygon_area(arr)) < 1e-12:
        return f"{name}: the polygon has zero area"
    return None


def arena_problem(shape: str, width: float, height: float, radius: float | None,
                  vertices: Any, holes: Sequence[Any]) -> str | None:
    """One line naming what is wrong with an arena description, or None if it is valid.

    Checks: the fields the shape needs are given (and no others); polygons are simple;
    the bounding box is centred on the origin; each hole is a simple polygon lying
    strictly inside the arena (no vertex outside, no edge crossing a wall) and holes do
    not overlap.
    """
    if shape == "circle" and radius is None:
        return "box.shape='circle' needs box.radius (metres)"
    if shape != "circle" and radius is not None:
        return f"box.radius={radius} is only for box.shape='circle' (got shape {shape!r})"
    if shape == "polygon":
        if vertices is None:
            return "box.shape='polygon' needs box.vertices: a list of [x, y] pairs in metres"
        p = _polygon_problem("box.vertices", vertices)
        if p:
            return p
    elif vertices is not None:
        return f"box.vertices is only for box.shape='polygon' (got shape {shape!r})"
    for k, h in enumerate(holes):
        p = _polygon_problem(f"box.holes[{k}]", h)
        if p:
            return p
    arena = _build(shape, width, height, radius, _freeze(vertices), tuple(_freeze(h) for h in holes))
    if shape in ("polygon",):
        x0, x1, y0, y1 = arena.extent
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if abs(cx) > 1e-9 or abs(cy) > 1e-9:
            return (f"box.vertices: the bounding box is centred at ({cx:.4g}, {cy:.4g}); positions are centred on "
                    f"the origin, so shift the vertices by ({-cx:.4g}, {-cy:.4g})")
    outer_segs = arena.segments[:len(arena.outer)] if arena.outer is not None else np.zeros((0, 2, 2))
    for k, h in enumerate(arena.holes):
        if not np.all(_strictly_inside_outer(arena, h)):
            return f"box.holes[{k}]: lies outside the arena or touches its wall; holes must be strictly inside"
        hs = np.stack(_edges(h), axis=1)
        if len(outer_segs) and _segments_cross(hs[:, None, 0], hs[:, None, 1],
                                               outer_segs[None, :, 0], outer_segs[None, :, 1]).any():
            return f"box.holes[{k}]: crosses the arena's wall; holes must be strictly inside"
        for j in range(k):
            g = arena.holes[j]
            gs = np.stack(_edges(g), axis=1)
            if (_segments_cross(hs[:, None, 0], hs[:, None, 1], gs[None, :, 0], gs[None, :, 1]).any()
                    or points_in_polygon(h[:1], g).any() or points_in_polygon(g[:1], h).any()):
                return f"box.holes[{k}] overlaps box.holes[{j}]; merge them into one polygon"
    if arena.area <= 0:
        return "box.holes: the holes cover the whole arena"
    return None


def _strictly_inside_outer(arena: Arena, pts: np.ndarray) -> np.ndarray:
    if arena.radius is not None:
        return np.hypot(pts[:, 0], pts[:, 1]) < arena.radius
    return points_in_polygon(pts, arena.outer)
