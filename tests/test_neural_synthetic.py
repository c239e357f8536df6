"""gridsweep.neural.synthetic: trajectories, MEC populations, Poisson recordings."""

from __future__ import annotations

import numpy as np
import pytest

from gridsweep.errors import DataError
from gridsweep.neural.predictivity import pearson_r
from gridsweep.neural.synthetic import (
    MECPopulationSpec,
    make_population,
    random_walk,
    simulate_animals,
    simulate_recording,
    trajectory_from_positions,
)


def test_random_walk_is_seeded_and_stays_in_the_box():
    a = random_walk(60.0, arena_size_m=1.2, seed=3)
    b = random_walk(60.0, arena_size_m=1.2, seed=3)
    c = random_walk(60.0, arena_size_m=1.2, seed=4)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)
    assert a.positions.shape == (3000, 2) and a.extent == (-0.6, 0.6, -0.6, 0.6)
    assert np.all(np.abs(a.positions) <= 0.6 + 1e-12)
    speed = np.linalg.norm(np.diff(a.positions, axis=0), axis=1) / 0.02
    assert 0.08 < speed.mean() < 0.25  # ~0.15 m/s
    # heading is (mostly) the direction of motion
    step = np.diff(a.positions, axis=0)
    cosang = np.cos(np.arctan2(step[:, 1], step[:, 0]) - a.head_direction[1:])
    assert np.median(cosang) > 0.99


def test_population_modules_have_the_spacing_ratio():
    spec = MECPopulationSpec(n_grid_per_module=(5, 5, 5), base_spacing_m=0.3, spacing_ratio=1.4)
    pop = make_population(spec, seed=0)
    spacings = pop.spacings_m[pop.cell_types == "grid"]
    per_module = [np.unique(np.round(spacings[pop.module[pop.cell_types == "grid"] == m], 9)) for m in range(3)]
    assert all(len(s) == 1 for s in per_module)
    np.testing.assert_allclose([s[0] for s in per_module], [0.3, 0.42, 0.588])
    counts = {t: int((pop.cell_types == t).sum()) for t in ("grid", "border", "head_direction", "spatial")}
    assert counts == {"grid": 15, "border": spec.n_border, "head_direction": spec.n_head_direction, "spatial": spec.n_spatial}


def test_grid_cell_map_is_periodic_with_its_spacing():
    spec = MECPopulationSpec(n_grid_per_module=(1,), base_spacing_m=0.4, field_heterogeneity=0.0,
                             n_border=0, n_head_direction=0, n_spatial=0)
    pop = make_population(spec, seed=2)
    k = pop.grid_k[0, 0]
    lattice_vec = 0.4 * np.array([np.cos(np.arctan2(k[1], k[0]) + np.pi / 6), np.sin(np.arctan2(k[1], k[0]) + np.pi / 6)])
    x = np.random.default_rng(0).uniform(-0.3, 0.3, (100, 2))
    hd = np.zeros(100)
    np.testing.assert_allclose(pop.rates(x, hd), pop.rates(x + lattice_vec, hd), rtol=1e-9)
    assert pop.rates(x, hd).min() >= spec.baseline_rate_hz - 1e-12


def test_head_direction_cells_are_tuned_to_their_preference():
    spec = MECPopulationSpec(n_grid_per_module=(), n_border=0, n_head_direction=3, n_spatial=0)
    pop = make_population(spec, seed=5)
    hd = np.linspace(-np.pi, np.pi, 361)
    r = pop.rates(np.zeros((361, 2)), hd)
    best = hd[np.argmax(r, axis=0)]
    np.testing.assert_allclose(np.cos(best - pop.hd_pref), 1.0, atol=1e-3)


def test_recording_converges_to_the_noiseless_maps():
    rec = simulate_recording(duration_s=600.0, seed=2)
    ds = rec.dataset
    assert ds.split_maps is not None and ds.split_maps.shape == (2, *ds.maps.shape)
    assert rec.true_maps.shape == ds.maps.shape
    spatial = np.isin(rec.cell_types, ["grid", "border", "spatial"])
    ok = np.isfinite(ds.maps[0])
    r = np.array([pearson_r(ds.maps[c][ok], rec.true_maps[c][ok]) for c in np.flatnonzero(spatial)])
    assert np.median(r) > 0.85
    # total spike count matches the expected count of the Poisson process
    rates = rec.population.rates(rec.trajectory.positions, rec.trajectory.head_direction)
    expected = (rates * rec.trajectory.dt[:, None]).sum()
    observed = sum(len(s) for s in rec.spike_times)
    assert abs(observed - expected) < 5 * np.sqrt(expected)


def test_user_trajectory_and_animals():
    walk = random_walk(120.0, seed=1)
    traj = trajectory_from_positions(walk.positions, 0.02, extent=walk.extent)
    rec = simulate_recording(MECPopulationSpec(n_grid_per_module=(3,), n_border=1, n_head_direction=1, n_spatial=1),
                             trajectory=traj, seed=0)
    np.testing.assert_array_equal(rec.trajectory.positions, walk.positions)
    recs = simulate_animals(2, MECPopulationSpec(n_grid_per_module=(3,), n_border=0, n_head_direction=0, n_spatial=1),
                            duration_s=60.0, seed=0)
    assert [r.dataset.animal[0] for r in recs] == ["sim0", "sim1"]
    assert not np.allclose(recs[0].population.grid_phase, recs[1].population.grid_phase)
    with pytest.raises(DataError):
        trajectory_from_positions(np.zeros((5, 3)), 0.02)
    with pytest.raises(DataError, match="no cells"):
        make_population(MECPopulationSpec(n_grid_per_module=(), n_border=0, n_head_direction=0, n_spatial=0))
