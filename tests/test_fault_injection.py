"""Fault injection: every checkpoint and result file, damaged four ways, is caught on load.

A run is trained and scored once; each test copies it, damages one file (truncate to
half, zero every byte, flip a byte in the header, flip a byte in the data, or empty it)
and reads it back with the loader gridsweep uses for it. Each must raise
CorruptFileError whose message names the damaged file (docs/reliability.md).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from gridsweep.errors import CorruptFileError
from gridsweep.files import load_npz, load_torch, read_json, read_parquet, verify_checksum
from gridsweep.training import load_run, train

#: run-relative path -> the loader gridsweep reads it with
FILES = {
    "checkpoints/last.pt": load_torch,
    "config.yaml": verify_checksum,
    "status.json": read_json,
    "summary.json": read_json,
    "analysis/summary.json": read_json,
    "analysis/ratemaps.npz": load_npz,
    "analysis/units.parquet": read_parquet,
}


def _truncate(b: bytes) -> bytes:
    return b[: len(b) // 2]


def _zero(b: bytes) -> bytes:
    return bytes(len(b))


def _flip_at(b: bytes, i: int) -> bytes:
    a = bytearray(b)
    a[i] ^= 0x01
    return bytes(a)


def _flip_header(b: bytes) -> bytes:
    return _flip_at(b, min(2, len(b) - 1))


def _flip_data(b: bytes) -> bytes:
    return _flip_at(b, len(b) * 2 // 3)


def _empty(b: bytes) -> bytes:
    return b""


FAULTS = {"truncate": _truncate, "zero": _zero, "flip_header": _flip_header, "flip_data": _flip_data,
          "empty": _empty}


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    from gridsweep.config import RunConfig
    from gridsweep.evaluation import score_run

    cfg = RunConfig().with_overrides({
        "model.hidden_size": 16, "target.n_cells": 16, "trajectory.batch_size": 8,
        "trajectory.sequence_length": 5, "training.n_steps": 6, "training.eval_every": 6,
        "training.checkpoint_every": 3, "training.log_every": 3, "training.learning_rate": 1e-3,
        "evaluation.n_trajectories": 8, "evaluation.sequence_length": 5, "evaluation.ratemap_samples": 2000,
        "evaluation.bins": 8,
    })
    d = tmp_path_factory.mktemp("fault") / "run"
    train(cfg, d, progress=False)
    score_run(d, figures=False)
    return d


def test_every_result_file_has_a_checksum_that_verifies(scored_run):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing sidecar would warn
        for rel, loader in FILES.items():
            loader(scored_run / rel)
            assert verify_checksum(scored_run / rel, "require"), rel


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("rel", list(FILES))
def test_damaged_file_is_detected_and_named(scored_run, tmp_path, rel, fault):
    run = tmp_path / "run"
    shutil.copytree(scored_run, run)
    f = run / rel
    f.write_bytes(FAULTS[fault](f.read_bytes()))
    with pytest.raises(CorruptFileError) as err:
        FILES[rel](f)
    assert str(f) in str(err.value)
    assert Path(err.value.path) == f


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("rel", ["checkpoints/last.pt", "config.yaml"])
def test_load_run_names_the_damaged_file(scored_run, tmp_path, rel, fault):
    run = tmp_path / "run"
    shutil.copytree(scored_run, run)
    f = run / rel
    f.write_bytes(FAULTS[fault](f.read_bytes()))
    with pytest.raises(CorruptFileError, match=str(f)):
        load_run(run)


@pytest.mark.parametrize("fault", ["truncate", "zero", "empty"])
@pytest.mark.parametrize("rel", ["checkpoints/last.pt", "analysis/ratemaps.npz", "analysis/units.parquet",
                                 "status.json"])
def test_damage_is_caught_without_a_sidecar_too(scored_run, tmp_path, rel, fault):
    """Files from before checksums: parse errors still become a CorruptFileError naming the file."""
    run = tmp_path / "run"
    shutil.copytree(scored_run, run)
    f = run / rel
    f.write_bytes(FAULTS[fault](f.read_bytes()))
    (run / (rel + ".sha256")).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CorruptFileError, match=str(f)):
            FILES[rel](f)


def test_damaged_checkpoint_stops_a_resume_instead_of_reporting_done(scored_run, tmp_path):
    """A flipped byte in the weights used to be accepted; the resume then said 'done'."""
    from gridsweep.config import load_config

    run = tmp_path / "run"
    shutil.copytree(scored_run, run)
    ck = run / "checkpoints" / "last.pt"
    ck.write_bytes(_flip_data(ck.read_bytes()))
    before = (run / "analysis" / "summary.json").read_bytes()
    with pytest.raises(CorruptFileError, match="checksum mismatch"):
        train(load_config(run / "config.yaml"), run, progress=False)
    assert (run / "analysis" / "summary.json").read_bytes() == before
