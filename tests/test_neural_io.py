"""gridsweep.neural data: NeuralDataset, NWB / Nayebi / npz loaders, unit checks."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from gridsweep.errors import DataError
from gridsweep.neural.dataset import NeuralDataset, concat_datasets, from_arrays
from gridsweep.neural.io import (
    PositionUnitWarning,
    convert_positions,
    load_dataset,
    load_nayebi,
    load_npz,
    load_nwb,
    save_nayebi,
    save_npz,
    spike_counts,
    write_nwb,
)
from gridsweep.neural.synthetic import MECPopulationSpec, simulate_recording

pynwb = pytest.importorskip("pynwb")

SMALL = MECPopulationSpec(n_grid_per_module=(4, 3), n_border=2, n_head_direction=1, n_spatial=2)


@pytest.fixture(scope="module")
def rec():
    return simulate_recording(SMALL, duration_s=240.0, arena_size_m=0.8, seed=11)


@pytest.fixture(scope="module")
def nwb_path(rec, tmp_path_factory):
    return rec.write_nwb(tmp_path_factory.mktemp("nwb") / "session.nwb")


# ------------------------------------------------------------------ dataset
def test_from_arrays_transposes_nayebi_order_explicitly():
    rng = np.random.default_rng(0)
    cyx = rng.random((3, 4, 5))  # C=3, ny=4, nx=5
    xyc = np.transpose(cyx, (2, 1, 0))  # (nx, ny, C)
    ds = from_arrays(xyc, (-1, 1, -0.8, 0.8), layout="xyc")
    assert ds.shape == (4, 5)
    np.testing.assert_array_equal(ds.maps, cyx)
    assert ds.bin_size == pytest.approx((0.4, 0.4))
    with pytest.raises(DataError, match="layout"):
        from_arrays(cyx, (-1, 1, -1, 1), layout="yxc")


def test_dataset_validation_names_the_problem():
    maps = np.zeros((2, 3, 3))
    with pytest.raises(DataError, match="occupancy"):
        NeuralDataset(maps, np.zeros((4, 4)), (0, 1, 0, 1), ["a", "b"], "r1", "s1")
    with pytest.raises(DataError, match="extent"):
        NeuralDataset(maps, np.zeros((3, 3)), (1, 0, 0, 1), ["a", "b"], "r1", "s1")
    with pytest.raises(DataError, match="split_maps"):
        NeuralDataset(maps, np.zeros((3, 3)), (0, 1, 0, 1), ["a", "b"], "r1", "s1", split_maps=np.zeros((2, 1, 3, 3)))
    with pytest.raises(DataError, match="unique"):
        NeuralDataset(maps, np.zeros((3, 3)), (0, 1, 0, 1), ["a", "a"], "r1", "s1")


def test_subset_and_concat(rec):
    ds = rec.dataset
    sub = ds.subset([0, 2])
    assert sub.n_cells == 2 and sub.split_maps.shape[1] == 2
    other = from_arrays(ds.maps[:3], ds.extent, animal="other")
    both = concat_datasets([ds, other])
    assert both.n_cells == ds.n_cells + 3
    assert both.split_maps is None
    assert both.animals == [ds.animal[0], "other"]
    with pytest.raises(DataError, match="share one grid"):
        concat_datasets([ds, from_arrays(np.zeros((1, 3, 3)), ds.extent)])


# -------------------------------------------------------------------- units
def test_centimetre_arena_warns_and_cm_unit_converts():
    pos_cm = np.random.default_rng(0).uniform(-50, 50, (200, 2))
    with pytest.warns(PositionUnitWarning, match="position_unit='cm'"):
        convert_positions(pos_cm, "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = convert_positions(pos_cm, "cm")
    np.testing.assert_allclose(out, pos_cm / 100)
    with pytest.raises(DataError, match="position_unit"):
        convert_positions(pos_cm, "furlong")


def test_spike_counts_per_sample_interval():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    counts = spike_counts(t, [np.array([0.0, 0.5, 0.99, 1.0, 3.5, 4.2]), np.array([])])
    np.testing.assert_array_equal(counts[:, 0], [3, 1, 0, 1])  # 4.2 is past the last sample
    np.testing.assert_array_equal(counts[:, 1], 0)


# ---------------------------------------------------------------------- NWB
def _direct_maps(rec, speed_threshold_cm_s=2.5):
    """Rate maps built independently of the loader: counts / dt, speed filter, rate_maps."""
    from gridsweep.analysis import rate_maps

    t, pos = rec.trajectory.times, rec.trajectory.positions
    dt = np.append(np.diff(t), np.median(np.diff(t)))
    edges = np.append(t, t[-1] + dt[-1])
    rates = np.stack([np.histogram(st, edges)[0] for st in rec.spike_times], axis=1) / dt[:, None]
    speed = np.hypot(*np.gradient(pos, t, axis=0).T) * 100
    keep = speed > speed_threshold_cm_s
    return rate_maps(pos[keep], rates[keep], extent=rec.trajectory.extent, bin_width=0.05)


def test_nwb_round_trip_equals_direct_maps(rec, nwb_path):
    ds = load_nwb(nwb_path, extent=rec.trajectory.extent)
    direct = _direct_maps(rec)
    np.testing.assert_allclose(ds.maps, direct.maps, rtol=1e-10, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ds.maps, rec.dataset.maps, rtol=1e-10, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ds.split_maps, rec.dataset.split_maps, rtol=1e-10, atol=1e-12, equal_nan=True)
    assert ds.split_maps.shape == (2, *ds.maps.shape)
    assert list(ds.cell_ids) == [str(i) for i in range(rec.population.n_cells)]
    assert set(ds.animal) == {"sim0"} and set(ds.session) == {"session0"}


def test_nwb_default_extent_is_centred_and_speed_filter_applies(nwb_path):
    ds = load_nwb(nwb_path)
    xmin, xmax, ymin, ymax = ds.extent
    assert xmin == pytest.approx(-xmax) and ymin == pytest.approx(-ymax)
    assert ds.shape == (16, 16)  # 0.8 m arena, 5 cm bins
    all_samples = load_nwb(nwb_path, speed_threshold_cm_s=0.0)
    assert all_samples.meta["n_samples_kept"] > ds.meta["n_samples_kept"]


def test_nwb_in_centimetres_warns_and_converts(rec, tmp_path):
    t, pos = rec.trajectory.times, rec.trajectory.positions
    path = write_nwb(tmp_path / "cm.nwb", t, pos * 100, rec.spike_times, position_unit="meters")
    with pytest.warns(PositionUnitWarning, match="centimetres"):
        load_nwb(path, bin_width=5.0, speed_threshold_cm_s=0.0, split_halves=False)
    ds = load_nwb(path, position_unit="cm", extent=rec.trajectory.extent)
    np.testing.assert_allclose(ds.maps, rec.dataset.maps, rtol=1e-9, equal_nan=True)
    # a file that declares centimetres is converted automatically
    path2 = write_nwb(tmp_path / "cm2.nwb", t, pos * 100, rec.spike_times, position_unit="cm")
    ds2 = load_nwb(path2, extent=rec.trajectory.extent)
    np.testing.assert_allclose(ds2.maps, rec.dataset.maps, rtol=1e-9, equal_nan=True)


def _nwbfile():
    import datetime

    from pynwb import NWBFile

    return NWBFile(session_description="x", identifier="x",
                   session_start_time=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))


def _position(nwb, n_data=50, n_t=50):
    from pynwb.behavior import Position, SpatialSeries

    ss = SpatialSeries(name="pos", data=np.zeros((n_data, 2)), timestamps=np.arange(n_t) * 0.02, reference_frame="c")
    nwb.create_processing_module("behavior", "b").add(Position(spatial_series=ss, name="Position"))


def _write(nwb, path):
    from pynwb import NWBHDF5IO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynwb warns about the deliberately broken inputs
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return path


def test_nwb_without_units_raises(tmp_path):
    nwb = _nwbfile()
    _position(nwb)
    with pytest.raises(DataError, match="no Units table"):
        load_nwb(_write(nwb, tmp_path / "nounits.nwb"))


def test_nwb_without_position_raises(tmp_path):
    nwb = _nwbfile()
    nwb.add_unit(spike_times=[0.1, 0.2])
    with pytest.raises(DataError, match="no Position.*'behavior' is missing"):
        load_nwb(_write(nwb, tmp_path / "nopos.nwb"))
    nwb = _nwbfile()
    nwb.add_unit(spike_times=[0.1, 0.2])
    nwb.create_processing_module("behavior", "b")
    with pytest.raises(DataError, match="no Position SpatialSeries"):
        load_nwb(_write(nwb, tmp_path / "emptybehavior.nwb"))


@pytest.mark.filterwarnings("ignore:.*Length of data does not match:UserWarning")
def test_nwb_mismatched_lengths_raise(tmp_path):
    import h5py

    nwb = _nwbfile()
    nwb.add_unit(spike_times=[0.1, 0.2])
    _position(nwb, n_data=50, n_t=50)
    path = _write(nwb, tmp_path / "mismatch.nwb")
    with h5py.File(path, "r+") as f:  # pynwb refuses to write this, so break the file afterwards
        key = "processing/behavior/Position/pos/timestamps"
        attrs = dict(f[key].attrs)
        del f[key]
        f.create_dataset(key, data=np.arange(40) * 0.02)
        f[key].attrs.update(attrs)
    with pytest.raises(DataError, match="mismatched lengths.*40 timestamps vs 50 samples"):
        load_nwb(path)


def test_corrupt_and_missing_files_raise(tmp_path):
    bad = tmp_path / "garbage.nwb"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DataError, match="cannot be"):
        load_nwb(bad)
    with pytest.raises(DataError, match="not found"):
        load_nwb(tmp_path / "absent.nwb")
    with pytest.raises(DataError, match="unknown data format"):
        load_dataset(tmp_path / "x.mat")


# ------------------------------------------------------------------- Nayebi
def test_nayebi_pickle_and_npz_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    resp_a = rng.random((6, 4, 3))  # (nx=6, ny=4, cells=3)
    resp_b = rng.random((6, 4, 2))
    d = {"arena1": {"ratA": {"resp": resp_a, "cell_ids": ["c1", "c2", "c3"]}, "ratB": {"resp": resp_b, "cell_ids": [7, 8]}}}
    pkl = tmp_path / "nayebi.pkl"
    pkl.write_bytes(pickle.dumps(d))
    ds = load_nayebi(pkl, allow_pickle=True)
    assert ds.shape == (4, 6) and ds.n_cells == 5
    np.testing.assert_array_equal(ds.maps[0], resp_a[:, :, 0].T)  # (nx, ny) -> (ny, nx)
    np.testing.assert_array_equal(ds.maps[4], resp_b[:, :, 1].T)
    assert list(ds.cell_ids) == ["c1", "c2", "c3", "7", "8"]
    assert ds.animals == ["ratA", "ratB"]
    assert ds.extent == pytest.approx((-0.15, 0.15, -0.1, 0.1))  # 5 cm bins
    npz = save_nayebi(tmp_path / "nayebi.npz", ds, arena="arena1")
    back = load_dataset(npz)
    np.testing.assert_array_equal(back.maps, ds.maps)
    assert list(back.cell_ids) == list(ds.cell_ids)


def test_nayebi_errors_name_what_is_wrong(tmp_path):
    d = {"a1": {"r": {"resp": np.zeros((3, 3, 1))}}, "a2": {"r": {"resp": np.zeros((3, 3, 1))}}}
    p = tmp_path / "two.pkl"
    p.write_bytes(pickle.dumps(d))
    with pytest.raises(DataError, match="several arenas"):
        load_nayebi(p, allow_pickle=True)
    with pytest.raises(DataError, match="not found; available"):
        load_nayebi(p, arena="a3", allow_pickle=True)
    p2 = tmp_path / "noresp.pkl"
    p2.write_bytes(pickle.dumps({"a": {"r": {"maps": np.zeros((3, 3, 1))}}}))
    with pytest.raises(DataError, match="no 'resp'"):
        load_nayebi(p2, allow_pickle=True)


def test_own_npz_round_trip(rec, tmp_path):
    path = save_npz(tmp_path / "ds.npz", rec.dataset)
    back = load_npz(path)
    np.testing.assert_array_equal(back.maps, rec.dataset.maps)
    np.testing.assert_array_equal(back.split_maps, rec.dataset.split_maps)
    assert back.extent == rec.dataset.extent


def test_nwb_lost_tracking_and_unit_selection(rec, tmp_path):
    t, pos = rec.trajectory.times, rec.trajectory.positions.copy()
    pos[100:400] = np.nan  # lost tracking
    path = write_nwb(tmp_path / "gaps.nwb", t, pos, rec.spike_times, cell_ids=range(100, 100 + len(rec.spike_times)))
    ds = load_nwb(path, extent=rec.trajectory.extent, unit_ids=[101, 103])
    assert list(ds.cell_ids) == ["101", "103"]
    full = load_nwb(path, extent=rec.trajectory.extent)
    assert full.meta["n_samples_kept"] < rec.dataset.meta["n_samples_kept"]
    np.testing.assert_allclose(ds.maps, full.maps[[1, 3]], equal_nan=True)
    with pytest.raises(DataError, match=r"unit ids \[7\] are not in the Units table"):
        load_nwb(path, unit_ids=[7])
    with pytest.raises(DataError, match="position series 'led2' not found"):
        load_nwb(path, position_series="led2")


def test_nayebi_npz_with_a_pickled_dict_needs_allow_pickle(tmp_path):
    d = {"arena": {"rat": {"resp": np.ones((4, 4, 2)), "cell_ids": ["a", "b"]}}}
    path = tmp_path / "obj.npz"
    np.savez(path, dataset=np.array(d, dtype=object))
    with pytest.raises(DataError, match="allow_pickle=True"):
        load_nayebi(path)
    assert load_nayebi(path, allow_pickle=True).n_cells == 2


def test_extent_in_centimetres_warns():
    with pytest.warns(PositionUnitWarning, match="centimetres"):
        from_arrays(np.zeros((1, 4, 4)), (-50, 50, -50, 50))
