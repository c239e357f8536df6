"""Grid scores: synthetic lattices, invariants, and direct unbatched references of each variant."""

import warnings

import numpy as np
import pytest
import scipy.signal
from scipy import ndimage

from gridsweep.analysis import GRID_SCORE_VARIANTS, autocorrelogram, grid_scores
from gridsweep.analysis.gridscore import rotate_sacs
from gridsweep.errors import AnalysisError, DataError

ANGLES = (30, 45, 60, 90, 120, 135, 150)
BOX = 2.2


def lattice(n, spacing, orientation_deg=0.0, phase=(0.07, -0.13), rectify=False, kind="hex"):
    """Sum of cosine gratings sampled at bin centres of an n x n grid over a 2.2 m box.

    ``hex``: three gratings 60 degrees apart with wave vectors at orientation + 30 degrees,
    so the lattice (the SAC peaks) sits at ``orientation`` mod 60 with period ``spacing``.
    ``square``: two gratings 90 degrees apart. ``stripe``: one grating.
    """
    c = (np.arange(n) + 0.5) * BOX / n - BOX / 2
    x, y = np.meshgrid(c, c)
    x, y = x - phase[0], y - phase[1]
    if kind == "hex":
        k, angles = 4 * np.pi / (np.sqrt(3) * spacing), orientation_deg + 30 + np.array([0, 60, 120])
    elif kind == "square":
        k, angles = 2 * np.pi / spacing, orientation_deg + np.array([0, 90])
    else:
        k, angles = 2 * np.pi / spacing, np.array([orientation_deg])
    th = np.deg2rad(angles)
    m = sum(np.cos(k * (np.cos(t) * x + np.sin(t) * y)) for t in th)
    return np.maximum(m, 0.0) if rectify else m


def smooth_noise(n, count, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.stack([ndimage.gaussian_filter(rng.normal(size=(n, n)), sigma) for _ in range(count)])


# ------------------------------------------------------------------ direct references (from the definitions)
def reference_sac(m):
    """Convolution-style SAC: overlap sums of masked maps by scipy.signal.correlate2d, then Pearson."""
    valid = np.isfinite(m)
    a = np.where(valid, m, 0.0)
    o = valid.astype(float)

    def corr(f, g):
        return scipy.signal.correlate2d(g, f, mode="full")

    n, sx, sy = corr(o, o), corr(a, o), corr(o, a)
    sxx, syy, sxy = corr(a * a, o), corr(o, a * a), corr(a, a)
    with np.errstate(all="ignore"):
        vx, vy = n * sxx - sx ** 2, n * syy - sy ** 2
        r = (n * sxy - sx * sy) / np.sqrt(vx * vy)
    ok = (np.rint(n) >= 2) & (vx > 1e-10 * n * sxx) & (vy > 1e-10 * n * syy)
    return np.where(ok, r, 0.0)


def reference_deepmind(m, combine):
    """One map at a time: SAC, ndimage.rotate per angle, loop over the ten rings."""
    sac = reference_sac(m)
    n = m.shape[0]
    c = (sac.shape[0] - 1) / 2
    yy, xx = np.mgrid[0:sac.shape[0], 0:sac.shape[1]]
    r = np.hypot(yy - c, xx - c)
    rotated = {a: ndimage.rotate(sac, a, reshape=False) for a in ANGLES}
    best60 = best90 = -np.inf
    for outer in np.linspace(0.4, 1.0, 10) * n:
        ring = (r > 0.2 * n) & (r <= outer)
        s = sac[ring]
        mu, var = s.mean(), s.var()
        cs = {a: np.sum((s - mu) * (rotated[a][ring] - mu)) / ring.sum() / (var + 1e-5) for a in ANGLES}
        if combine == "mean":
            g60 = (cs[60] + cs[120]) / 2 - (cs[30] + cs[90] + cs[150]) / 3
        else:
            g60 = min(cs[60], cs[120]) - max(cs[30], cs[90], cs[150])
        best60 = max(best60, g60)
        best90 = max(best90, cs[90] - (cs[45] + cs[135]) / 2)
    return best60, best90


def reference_sargolini(m):
    """Sargolini/BNT procedure as documented in grid_scores: loops over radii, np.corrcoef."""
    sac = reference_sac(m)
    n = m.shape[0]
    c = (sac.shape[0] - 1) / 2
    yy, xx = np.mgrid[0:sac.shape[0], 0:sac.shape[1]]
    r = np.hypot(yy - c, xx - c)
    profile = [sac[(r > k - 1) & (r <= k)].mean() if k else sac[r == 0].mean() for k in range(n)]
    r0 = n - 1
    for k in range(1, n):
        nxt = profile[k + 1] if k + 1 < n else np.inf
        if profile[k] <= 0 or nxt > profile[k]:
            r0 = k
            break
    rotated = {a: ndimage.rotate(sac, a, reshape=False) for a in ANGLES}
    g60, g90 = [], []
    for big_r in range(r0 + 1, n):
        ann = (r > r0) & (r <= big_r)
        cs = {a: np.corrcoef(sac[ann], rotated[a][ann])[0, 1] for a in ANGLES}
        g60.append(min(cs[60], cs[120]) - max(cs[30], cs[90], cs[150]))
        g90.append(cs[90] - (cs[45] + cs[135]) / 2)
    s60 = np.convolve(g60, np.ones(3) / 3, mode="valid")
    s90 = np.convolve(g90, np.ones(3) / 3, mode="valid")
    return np.nanmax(s60), np.nanmax(s90)


def _reference_maps(n, seed):
    m = [lattice(n, 0.62, 12), lattice(n, 0.5, 40, rectify=True), lattice(n, 0.55, 0, kind="square"),
         smooth_noise(n, 1, 1.5, seed)[0]]
    holed = lattice(n, 0.7, 5, rectify=True)
    holed[2:4, 5:8] = np.nan
    holed[-1, :3] = np.nan
    m.append(holed)
    return np.stack(m)


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("angle", [30.0, 45.0, 137.5])
@pytest.mark.parametrize("shape", [(9, 9), (11, 7)])
def test_batched_rotation_equals_ndimage_rotate(angle, shape):
    s = np.random.default_rng(0).normal(size=(3,) + shape)
    ref = np.stack([ndimage.rotate(x, angle, reshape=False) for x in s])
    np.testing.assert_allclose(rotate_sacs(s, angle), ref, rtol=0, atol=1e-12)


def test_sac_reference_agrees_with_autocorrelogram():
    m = _reference_maps(20, 0)
    ours = autocorrelogram(m)
    for u in range(len(m)):
        np.testing.assert_allclose(ours[u], reference_sac(m[u]), atol=1e-9)


@pytest.mark.parametrize("variant, combine", [("deepmind_mean", "mean"), ("deepmind_minmax", "minmax")])
def test_deepmind_variants_equal_direct_reference_20_bins(variant, combine):
    m = _reference_maps(20, 1)
    g = grid_scores(m, variant, unvisited="drop")      # the reference SAC drops NaN bins
    assert g["variant"] == variant
    for u in range(len(m)):
        s60, s90 = reference_deepmind(m[u], combine)
        assert g["score60"][u] == pytest.approx(s60, abs=1e-6)
        assert g["score90"][u] == pytest.approx(s90, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("variant, combine", [("deepmind_mean", "mean"), ("deepmind_minmax", "minmax")])
def test_deepmind_variants_equal_direct_reference_44_bins(variant, combine):
    m = _reference_maps(44, 2)[[0, 1, 4]]
    g = grid_scores(m, variant, unvisited="drop")
    for u in range(len(m)):
        s60, s90 = reference_deepmind(m[u], combine)
        assert g["score60"][u] == pytest.approx(s60, abs=1e-6)
        assert g["score90"][u] == pytest.approx(s90, abs=1e-6)


def test_sargolini_equals_direct_reference():
    m = _reference_maps(20, 3)
    g = grid_scores(m, "sargolini")
    for u in range(len(m)):
        s60, s90 = reference_sargolini(m[u])
        assert g["score60"][u] == pytest.approx(s60, abs=1e-9)
        assert g["score90"][u] == pytest.approx(s90, abs=1e-9)


@pytest.mark.parametrize("variant", sorted(GRID_SCORE_VARIANTS))
@pytest.mark.parametrize("n", [20, 44])
def test_hexagonal_scores_high_square_and_stripes_low(variant, n):
    maps = np.stack([lattice(n, 0.6, 10), lattice(n, 0.45, 33, rectify=True),
                     lattice(n, 0.55, 20, kind="square"), lattice(n, 0.55, 20, kind="square", rectify=True),
                     lattice(n, 0.5, 17, kind="stripe")])
    g = grid_scores(maps, variant)
    assert (g["score60"][:2] > 1.0).all(), g["score60"]
    assert (g["score60"][2:] < 0.3).all(), g["score60"]       # squares and stripes are not grids
    assert (g["score90"][2:4] > 0.9).all(), g["score90"]      # squares are square
    assert (g["score90"][:2] < 0.5).all(), g["score90"]       # hexagons are not
    assert g["correlations"].shape == (5, 7)
    np.testing.assert_array_equal(g["angles"], ANGLES)
    assert (g["best_ring"][:2] >= 0).all()


@pytest.mark.parametrize("variant", sorted(GRID_SCORE_VARIANTS))
def test_smooth_noise_scores_near_zero(variant):
    g = grid_scores(smooth_noise(20, 40, 1.0, seed=4), variant)["score60"]
    assert np.isfinite(g).all()
    assert abs(np.median(g)) < 0.3
    assert np.mean(g > 0.8) <= 0.05


@pytest.mark.parametrize("variant", sorted(GRID_SCORE_VARIANTS))
def test_rot90_leaves_scores_unchanged(variant):
    m = np.concatenate([_reference_maps(20, 5), smooth_noise(20, 3, 1.0, seed=6)])
    a = grid_scores(m, variant)
    for k in (1, 2, 3):
        b = grid_scores(np.rot90(m, k, axes=(1, 2)), variant)
        np.testing.assert_allclose(b["score60"], a["score60"], atol=1e-9)
        np.testing.assert_allclose(b["score90"], a["score90"], atol=1e-9)


@pytest.mark.parametrize("variant", sorted(GRID_SCORE_VARIANTS))
def test_nan_bins_do_not_propagate(variant):
    clean = lattice(20, 0.6, 10, rectify=True)
    holed = clean.copy()
    holed[5:7, 5:7] = np.nan
    holed[0, :] = np.nan
    g = grid_scores(np.stack([clean, holed]), variant)
    assert np.isfinite(g["score60"]).all() and np.isfinite(g["correlations"]).all()
    assert g["score60"][1] > 1.0
    assert abs(g["score60"][1] - g["score60"][0]) < 0.3


@pytest.mark.parametrize("variant", sorted(GRID_SCORE_VARIANTS))
def test_constant_and_empty_maps_are_nan_without_warnings(variant):
    m = np.stack([np.full((20, 20), 0.7), np.full((20, 20), np.nan), lattice(20, 0.6)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = grid_scores(m, variant)
    assert np.isnan(g["score60"][:2]).all() and np.isnan(g["score90"][:2]).all()
    assert np.isnan(g["correlations"][:2]).all() and (g["best_ring"][:2] == -1).all()
    assert np.isfinite(g["score60"][2])


@pytest.mark.parametrize("variant", sorted(GRID_SCORE_VARIANTS))
def test_batched_equals_one_by_one_and_sacs_argument(variant):
    m = smooth_noise(12, 70, 1.0, seed=7)        # more units than one internal chunk
    g = grid_scores(m, variant)
    sacs = autocorrelogram(m)
    g2 = grid_scores(variant=variant, sacs=sacs)
    np.testing.assert_allclose(g2["score60"], g["score60"], atol=1e-12)
    for u in (0, 64, 69):
        one = grid_scores(m[u], variant)
        assert one["score60"][0] == pytest.approx(g["score60"][u], abs=1e-12)
        np.testing.assert_allclose(one["correlations"][0], g["correlations"][u], atol=1e-12)


def test_correlations_are_those_of_the_best_ring():
    g = grid_scores(lattice(20, 0.6, 10), "deepmind_minmax")
    c = dict(zip(ANGLES, g["correlations"][0]))
    assert g["score60"][0] == pytest.approx(min(c[60], c[120]) - max(c[30], c[90], c[150]), abs=1e-12)
    assert 0.4 * 20 <= g["best_radius"][0] <= 20


def test_errors():
    with pytest.raises(AnalysisError, match="variant must be one of"):
        grid_scores(np.zeros((1, 5, 5)), "banino")
    with pytest.raises(AnalysisError, match="neither"):
        grid_scores()
    with pytest.raises(DataError, match="NaN"):
        grid_scores(sacs=np.full((1, 9, 9), np.nan))
    with pytest.raises(DataError, match="does not match"):
        grid_scores(np.zeros((2, 5, 5)), sacs=np.zeros((2, 7, 7)))


@pytest.mark.slow
def test_sargolini_equals_direct_reference_44_bins():
    m = _reference_maps(44, 8)[[0, 1, 3, 4]]
    g = grid_scores(m, "sargolini")
    for u in range(len(m)):
        s60, s90 = reference_sargolini(m[u])
        assert g["score60"][u] == pytest.approx(s60, abs=1e-9)
        assert g["score90"][u] == pytest.approx(s90, abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("n", [20, 44])
def test_end_to_end_from_noisy_samples(n):
    """Samples -> rate maps -> scores -> geometry: a noisy grid cell beats noise units by far."""
    from gridsweep.analysis import grid_geometry, rate_maps

    rng = np.random.default_rng(9)
    pos = rng.uniform(-1.15, 1.15, (400_000, 2))        # slightly past the walls, as the motion model does
    k = 4 * np.pi / (np.sqrt(3) * 0.6)
    th = np.deg2rad(20 + 30 + np.array([0, 60, 120]))
    grid = np.maximum(sum(np.cos(k * (np.cos(t) * pos[:, 0] + np.sin(t) * pos[:, 1])) for t in th), 0)
    act = np.stack([grid + rng.normal(0, 1.0, len(pos))] + [rng.normal(size=len(pos)) for _ in range(20)], 1)
    rm = rate_maps(pos, act, bins=n)
    for variant in GRID_SCORE_VARIANTS:
        s = grid_scores(rm, variant)["score60"]
        assert s[0] > 0.8, (variant, s[0])
        assert np.all(s[1:] < 0.8), (variant, s[1:].max())
    geo = grid_geometry(rm)
    assert geo["spacing_m"][0] == pytest.approx(0.6, rel=0.05)
    assert abs((geo["orientation_deg"][0] - 20 + 30) % 60 - 30) < 3


# ------------------------------------------------------------------ DeepMind's published scorer as the oracle
# Independent transcription of google-deepmind/grid-cells scores.py (commit d1a2304), written
# from the file: circle_mask (lines 30-42), GridScorer._get_ring_mask (82-85), grid_score_60 /
# grid_score_90 (87-95), calculate_sac (97-141), rotated_sacs (143-147),
# get_grid_scores_for_mask (149-163), get_scores (165-179). Rings as in their train.py:
# starts 0.2, ends linspace(0.4, 1.0, 10).
def deepmind_oracle_sac(rate_map):
    z = np.nan_to_num(np.array(rate_map, dtype=float))   # :105-106; the ones masks (:108-111) are all 1
    ones = np.ones_like(z)

    def overlap_sum(b, x):                                 # filter2, :101-103
        return scipy.signal.convolve2d(x, np.rot90(b, 2), mode="full")

    cnt = overlap_sum(ones, ones)
    s1, s2 = overlap_sum(z, ones), overlap_sum(ones, z)
    q1, q2 = overlap_sum(z * z, ones), overlap_sum(ones, z * z)
    cross = overlap_sum(z, z)
    with np.errstate(all="ignore"):
        sd1 = np.power(q1 / cnt - s1 ** 2 / cnt ** 2, 0.5)   # :127-134
        sd2 = np.power(q2 / cnt - s2 ** 2 / cnt ** 2, 0.5)
        r = (cross / cnt - s1 * s2 / cnt ** 2) / (sd1 * sd2)   # :135-138
    return np.nan_to_num(np.real(r))                          # :139-140


def deepmind_oracle_scores(rate_map, min_max):
    nb = rate_map.shape[0]
    sac = deepmind_oracle_sac(rate_map)
    size = 2 * nb - 1
    half = size // 2
    grid = np.linspace(-half, half, size)                     # circle_mask coordinates, :32-38
    dist = np.sqrt(grid[None, :] ** 2 + grid[:, None] ** 2)
    rotated = [ndimage.rotate(sac, a, reshape=False) for a in ANGLES]
    s60, s90 = [], []
    for outer in np.linspace(0.4, 1.0, 10):
        ring = ((dist <= outer * nb) & ~(dist <= 0.2 * nb)).astype(float)
        area = ring.sum()
        dc = (sac * ring).sum() / area
        centred = (sac - dc) * ring
        var = (centred ** 2).sum() / area + 1e-5
        c = {a: (centred * (rot - dc) * ring).sum() / area / var for a, rot in zip(ANGLES, rotated)}
        if min_max:
            s60.append(min(c[60], c[120]) - max(c[30], c[90], c[150]))
        else:
            s60.append((c[60] + c[120]) / 2 - (c[30] + c[90] + c[150]) / 3)
        s90.append(c[90] - (c[45] + c[135]) / 2)
    return s60[int(np.argmax(s60))], s90[int(np.argmax(s90))]


def _oracle_maps(n, seed):
    """Maps that broke the FFT SAC (huge dynamic range) and maps with unvisited bins."""
    rng = np.random.default_rng(seed)
    c = np.arange(n) - (n - 1) / 2
    x, y = np.meshgrid(c, c)
    gauss = [np.exp(-((x - 2.3) ** 2 + (y + 1.1) ** 2) / (2 * s ** 2)) for s in (0.12 * n, 0.15 * n)]
    heavy = np.exp(6.0 * rng.normal(size=(n, n)))             # values spanning ~10 orders of magnitude
    holed = lattice(n, 0.6, 10, rectify=True) + 0.05 * rng.normal(size=(n, n))
    holed[rng.random((n, n)) < 0.08] = np.nan
    holed[: n // 6, : n // 4] = np.nan
    noisy = smooth_noise(n, 1, 1.5, seed)[0]
    noisy[rng.random((n, n)) < 0.2] = np.nan
    return np.stack(gauss + [heavy, holed, noisy, lattice(n, 0.55, 0, kind="square")])


@pytest.mark.parametrize("variant, min_max", [("deepmind_minmax", True), ("deepmind_mean", False)])
def test_deepmind_variants_equal_published_scorer_on_hard_maps(variant, min_max):
    m = _oracle_maps(20, 11)
    g = grid_scores(m, variant)
    for u in range(len(m)):
        s60, s90 = deepmind_oracle_scores(m[u], min_max)
        assert abs(g["score60"][u] - s60) < 1e-6, (u, g["score60"][u], s60)
        assert abs(g["score90"][u] - s90) < 1e-6, (u, g["score90"][u], s90)


def test_deepmind_sac_equals_published_sac_where_fft_round_off_dominated():
    m = _oracle_maps(20, 12)[:3]                      # Gaussian fields without threshold, heavy tails
    assert np.nanmax(m[0]) / np.nanmin(m[0]) > 1e6
    sacs = autocorrelogram(m, unvisited="zero")
    for u in range(len(m)):
        np.testing.assert_allclose(sacs[u], deepmind_oracle_sac(m[u]), rtol=0, atol=1e-10)


def test_unvisited_options_zero_is_default_for_deepmind_and_drop_is_kept():
    m = _oracle_maps(20, 13)[[3, 4]]                  # maps with NaN bins
    zero = grid_scores(m, "deepmind_minmax")
    assert zero["score60"] == pytest.approx(grid_scores(np.nan_to_num(m), "deepmind_minmax")["score60"], abs=1e-12)
    drop = grid_scores(m, "deepmind_minmax", unvisited="drop")
    np.testing.assert_allclose(drop["score60"], grid_scores(variant="deepmind_minmax", sacs=autocorrelogram(m))["score60"],
                               atol=1e-12)
    assert np.abs(drop["score60"] - zero["score60"]).max() > 1e-3   # the two conventions differ on holed maps
    sarg = grid_scores(m, "sargolini")                                # BNT drops unvisited bins
    np.testing.assert_allclose(sarg["score60"], grid_scores(m, "sargolini", unvisited="drop")["score60"], atol=0)
    with pytest.raises(AnalysisError, match="unvisited"):
        grid_scores(m, "deepmind_minmax", unvisited="nan")


@pytest.mark.slow
def test_deepmind_minmax_equals_published_scorer_44_bins():
    m = _oracle_maps(44, 14)
    g = grid_scores(m, "deepmind_minmax")
    for u in range(len(m)):
        s60, s90 = deepmind_oracle_scores(m[u], True)
        assert abs(g["score60"][u] - s60) < 1e-6 and abs(g["score90"][u] - s90) < 1e-6
