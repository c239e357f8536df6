"""Reliability and safety of files: no file a user opens runs code, nothing corrupt passes silently.

One test per guarantee of docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from gridsweep.errors import ConfigError, CorruptFileError, DataError, DivergedError, ResourceError, UnsafeFileError
from gridsweep.files import (
    atomic_path,
    checksum_path,
    load_npz,
    load_torch,
    save_torch,
    sha256_file,
    verify_checksum,
    write_json_atomic,
)
from gridsweep.training import Ensemble, estimate_memory_bytes, load_run, resume_command, train

SRC = Path(__file__).resolve().parents[1] / "src" / "gridsweep"


class _Payload:
    """Unpickling this creates the directory ``marker``: stands for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def params(ens):
    return {k: v.detach().clone() for k, v in ens.model.state_dict().items()}


# --------------------------------------------------------------------- no code execution
def test_crafted_checkpoint_does_not_run_code(tiny_cfg, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg, run, progress=False, stop_after=5)
    marker = tmp_path / "pwned"
    state = load_torch(run / "checkpoints" / "last.pt")
    state["extra"] = _Payload(marker)
    # a valid sidecar too: an attacker can compute a sha256 as easily as we can
    torch.save(state, run / "checkpoints" / "last.pt")
    checksum_path(run / "checkpoints" / "last.pt").write_text(f"{sha256_file(run / 'checkpoints' / 'last.pt')}  last.pt\n")
    with pytest.raises(CorruptFileError, match="could execute code"):
        load_run(run)
    with pytest.raises(CorruptFileError, match="could execute code"):
        train(tiny_cfg, run, progress=False)  # the resume path
    from gridsweep.sweeps.worker import CheckpointDiscardedWarning, prepare_checkpoints

    with pytest.warns(CheckpointDiscardedWarning, match="last.pt"):
        assert prepare_checkpoints([run]) is None  # the sweep path: discarded, retrained
    assert not marker.exists()


def test_pickled_dataset_is_refused_unless_allowed(tmp_path):
    from gridsweep.neural.io import load_dataset

    marker = tmp_path / "pwned"
    p = tmp_path / "data.pkl"
    p.write_bytes(pickle.dumps({"arena": _Payload(marker)}))
    with pytest.raises(UnsafeFileError, match="execute arbitrary code.*allow_pickle=True"):
        load_dataset(p)
    assert not marker.exists()
    obj = tmp_path / "obj.npz"
    np.savez(obj, dataset=np.array({"arena": {}}, dtype=object))
    with pytest.raises(UnsafeFileError, match="allow_pickle=True"):
        load_dataset(obj)


def test_source_has_no_code_executing_loaders():
    """grep of the package: torch.load, pickle, np.load, yaml.load, read_pickle, eval."""
    bad = []
    for f in SRC.rglob("*.py"):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#")[0]
            where = f"{f.relative_to(SRC)}:{i}: {line.strip()}"
            if "torch.load(" in code and "weights_only=True" not in code:
                bad.append(where)
            if re.search(r"weights_only\s*=\s*False|np\.load\(.*allow_pickle\s*=\s*True|yaml\.load\(|"
                         r"yaml\.unsafe_load|read_pickle|(?<![.\w])eval\(|(?<![.\w])exec\(", code):
                bad.append(where)
            if re.search(r"pickle\.loads?\(", code) and "explicit opt-in" not in line:
                bad.append(where)
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------- atomic writes
def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    p = tmp_path / "a.json"
    write_json_atomic(p, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(p, checksum=True) as tmp:
            tmp.write_text('{"v": 2')  # half written
            raise RuntimeError("killed")
    assert json.loads(p.read_text()) == {"v": 1} and verify_checksum(p)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.json", "a.json.sha256"]  # no temp left


def test_a_crash_between_sidecar_and_rename_leaves_a_pair_that_verifies(tmp_path, monkeypatch):
    p = tmp_path / "a.json"
    write_json_atomic(p, {"v": 1})
    real = os.replace

    def crash_on_data(src, dst):
        if Path(dst) == p:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_data)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(p, {"v": 2})
    monkeypatch.setattr(os, "replace", real)
    assert json.loads(p.read_text()) == {"v": 1} and verify_checksum(p)  # old data, sidecar lists both
    write_json_atomic(p, {"v": 3})
    assert len(checksum_path(p).read_text().splitlines()) == 1


def test_one_atomic_write_helper():
    import gridsweep.training as training

    defs = [f for f in SRC.rglob("*.py") if "def write_json_atomic" in f.read_text()]
    assert [f.name for f in defs] == ["files.py"]
    assert not hasattr(training, "_save_atomic")
    hand_written = [f"{f.relative_to(SRC)}" for f in SRC.rglob("*.py") if f.name != "files.py"
                    and re.search(r"os\.replace\(|with_suffix\(.*\.tmp|\.tmp\"\)?$|tmp\.replace\(", f.read_text(),
                                  re.MULTILINE)]
    assert not hand_written


# --------------------------------------------------------------------- resume and status
def test_train_seconds_accumulate_across_sessions(tiny_cfg, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg, run, progress=False, stop_after=10)
    ck = run / "checkpoints" / "last.pt"
    state = load_torch(ck)
    assert state["step"] == 10 and state["train_seconds"] > 0
    state["train_seconds"] = 1000.0  # as if the first session had taken 1000 s
    save_torch(state, ck)
    _, res = train(tiny_cfg, run, progress=False)
    assert res.status == "done"
    assert res.metrics["train_seconds"] > 1000.0
    assert res.metrics["seconds_per_step_per_network"] == pytest.approx(res.metrics["train_seconds"] / 20)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_seconds"] == pytest.approx(res.metrics["train_seconds"])


def test_ctrl_c_records_interrupted_with_the_checkpoint_step_and_resume_is_exact(tiny_cfg, tmp_path):
    full, _ = train(tiny_cfg, tmp_path / "full", progress=False)
    run = tmp_path / "run"

    def ctrl_c(ens, m):
        if ens.step == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg, run, progress=False, callback=ctrl_c)
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "interrupted" and status["step"] == 10 and status["checkpoint_step"] == 10
    assert status["interrupted_at_step"] == 12
    assert status["resume"] == resume_command(run) and str(run) in status["resume"]
    assert verify_checksum(run / "status.json", "require")
    resumed, res = train(tiny_cfg, run, progress=False)
    assert res.status == "done"
    assert all(torch.equal(a, b) for a, b in zip(params(full).values(), params(resumed).values()))


def test_status_tracks_the_last_checkpoint_while_running(tiny_cfg, tmp_path):
    run = tmp_path / "run"
    seen = []
    train(tiny_cfg, run, progress=False,
          callback=lambda ens, m: seen.append(json.loads((run / "status.json").read_text())) if ens.step == 7 else None)
    assert seen[0]["status"] == "running" and seen[0]["checkpoint_step"] == 5


# --------------------------------------------------------------------- typed errors
def test_empty_checkpoint_and_empty_npz_name_the_file(tiny_cfg, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg, run, progress=False, stop_after=5)
    ck = run / "checkpoints" / "last.pt"
    ck.write_bytes(b"")
    checksum_path(ck).unlink()
    with pytest.raises(CorruptFileError, match=f"{ck}: empty file"):
        load_run(run)
    z = tmp_path / "maps.npz"
    z.write_bytes(b"")
    with pytest.raises(CorruptFileError, match=f"{z}: empty file"):
        load_npz(z)
    from gridsweep.neural.io import load_dataset

    with pytest.raises(CorruptFileError, match=f"{z}: empty file"):
        load_dataset(z)


def test_score_refuses_a_diverged_run(tiny_cfg, tmp_path):
    from gridsweep.evaluation import score_run

    cfg = tiny_cfg.with_overrides({"training.learning_rate": 1e30, "model.activation": "linear"})
    _, res = train(cfg, tmp_path / "run", progress=False)
    assert res.status == "diverged"
    with pytest.raises(DivergedError, match=f"diverged at step {res.diverged_at}"):
        score_run(tmp_path / "run", figures=False)
    assert not (tmp_path / "run" / "analysis").exists()


def test_score_refuses_maps_with_infinite_activity(tiny_cfg, tmp_path):
    from gridsweep.evaluation import score_run

    ens, _ = train(tiny_cfg, tmp_path / "run", progress=False)
    with torch.no_grad():
        ens.model.W_hh.mul_(1e30)  # activity overflows along a trajectory
    with pytest.raises(DivergedError, match="step 20"):
        score_run(tmp_path / "run", ens, figures=False)
    assert not (tmp_path / "run" / "analysis").exists()


def test_missing_nwb_is_not_found_even_without_pynwb(tmp_path, monkeypatch):
    from gridsweep.neural.io import load_nwb

    monkeypatch.setitem(sys.modules, "pynwb", None)  # import pynwb -> ImportError
    with pytest.raises(DataError, match="not found"):
        load_nwb(tmp_path / "absent.nwb")
    (tmp_path / "x.nwb").write_bytes(b"\x89HDF")
    with pytest.raises(DataError, match="needs pynwb"):
        load_nwb(tmp_path / "x.nwb")


def test_all_nan_maps_are_refused_before_anything_is_written(tmp_path):
    from typer.testing import CliRunner

    from gridsweep.neural.cli import app, find_model_maps
    from gridsweep.neural.dataset import from_arrays
    from gridsweep.neural.io import load_dataset, save_npz, validate_maps

    with pytest.raises(DataError, match="all NaN"):
        validate_maps(np.full((3, 4, 4), np.nan), "m")
    with pytest.raises(DataError, match="infinite"):
        validate_maps(np.where(np.eye(4, dtype=bool), np.inf, 1.0)[None], "m")
    with pytest.raises(DataError, match="1 of 2 units"):
        validate_maps(np.stack([np.ones((4, 4)), np.full((4, 4), np.nan)]), "m")
    run = tmp_path / "run"
    (run / "analysis").mkdir(parents=True)
    np.savez(run / "analysis" / "ratemaps.npz", maps=np.full((5, 6, 6), np.nan), extent=np.array([-1, 1, -1, 1.0]))
    with pytest.raises(DataError, match="all NaN"):
        find_model_maps(run)
    ds = tmp_path / "cells.npz"
    save_npz(ds, from_arrays(np.full((4, 6, 6), np.nan), (-0.5, 0.5, -0.5, 0.5)))
    with pytest.raises(DataError, match=f"{ds}: cells are all NaN"):
        load_dataset(ds)
    r = CliRunner().invoke(app, ["fit", "--model", str(run), "--data", str(ds), "--out", str(tmp_path / "out")])
    assert r.exit_code != 0
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------- config validation
def _float_fields():
    from gridsweep import config as C

    sections = {"box": C.BoxConfig, "trajectory": C.TrajectoryConfig, "target": C.TargetConfig,
                "target.heterogeneity": C.HeterogeneityConfig, "head_direction": C.HeadDirectionConfig,
                "model": C.ModelConfig, "training": C.TrainingConfig, "evaluation": C.EvaluationConfig}
    out = []
    for prefix, model in sections.items():
        for name, f in model.model_fields.items():
            args = typing.get_args(f.annotation) or (f.annotation,)
            if float in args:
                out.append(f"{prefix}.{name}")
    return out


FLOAT_FIELDS = _float_fields()


def test_the_float_field_table_covers_the_known_fields():
    for f in ("training.learning_rate", "training.grad_clip", "box.width", "target.sigma", "trajectory.dt",
              "model.dropout", "head_direction.kappa", "target.heterogeneity.fields_lambda"):
        assert f in FLOAT_FIELDS


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), "inf", "--set .inf", "--set .nan"])
@pytest.mark.parametrize("field", FLOAT_FIELDS)
def test_float_fields_reject_inf_and_nan(field, value):
    from gridsweep.config import RunConfig

    overrides = [f"{field}={value[6:]}"] if isinstance(value, str) and value.startswith("--set") else {field: value}
    with pytest.raises(ConfigError, match=re.escape(field) + ".*finite number"):
        RunConfig().with_overrides(overrides)


def test_float_ranges_reject_inf():
    from gridsweep.config import RunConfig

    with pytest.raises(ConfigError, match="sigma_range.*finite"):
        RunConfig().with_overrides({"target.heterogeneity.sigma_range": [0.1, float("inf")]})


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_config_file_is_refused(tmp_path, text):
    from gridsweep.config import load_config

    p = tmp_path / "empty.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=f"{p}: the config file is empty"):
        load_config(p)
    p.write_text("{}\n")  # an explicit request for every default is fine
    assert load_config(p).model.hidden_size == 4096


# --------------------------------------------------------------------- memory
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "ugrnn"])
@pytest.mark.parametrize("extra", [{}, {"model.bias": True, "model.bottleneck": 5}])
def test_memory_estimate_counts_the_parameters_exactly(tiny_cfg, cell, extra):
    cfg = tiny_cfg.with_overrides({"model.cell": cell, **extra})
    ens = Ensemble([cfg, cfg.with_overrides({"seed": 1})])
    n = sum(p.numel() for p in ens.model.parameters())
    est = estimate_memory_bytes(ens.cfgs)
    assert est["parameters"] == n * 4 and est["gradients"] == n * 4 and est["optimizer"] == 2 * n * 4  # adam
    G = {"rnn": 1, "lstm": 4, "gru": 3, "ugrnn": 2}[cell]
    assert est["activations"] == 2 * 8 * 5 * (G * 16 + 16) * 4


def test_huge_model_is_refused_before_allocating(tiny_cfg):
    cfg = tiny_cfg.with_overrides({"model.hidden_size": 1_000_000_000})
    with pytest.raises(ResourceError, match=r"model.hidden_size=1000000000.*needs at least|needs at least.*"
                                            r"model.hidden_size=1000000000") as err:
        Ensemble([cfg])
    assert re.search(r"only [\d.e+]+ GiB is available", str(err.value))


def test_rescore_records_a_bad_checkpoint_as_failed_and_goes_on(tmp_path):
    from gridsweep.sweeps import load_results, rescore, run_sweep

    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase:\n  target: {n_cells: 16, surround_width_ratio: 2.0}\n  model: {hidden_size: 16}\n"
                    "  trajectory: {batch_size: 8, sequence_length: 5}\n"
                    "  training: {n_steps: 4, eval_every: 4, checkpoint_every: 4}\n"
                    "  evaluation: {n_trajectories: 8, ratemap_samples: 1000, bins: 8}\nseeds: 3\n")
    out = tmp_path / "o"
    run_sweep(spec, out, executor="serial", threads=1, analysis="none", progress=False)
    ids = sorted(load_results(out)["trial_id"])
    bad = out / "trials" / ids[1] / "checkpoints" / "last.pt"
    bad.write_bytes(bad.read_bytes()[:100])
    res = rescore(out, "scores", progress=False)
    assert sorted(res["rescored"]) == [ids[0], ids[2]]
    assert list(res["failed"]) == [ids[1]] and str(bad) in res["failed"][ids[1]]
    df = load_results(out).set_index("trial_id")
    assert df.loc[ids[1], "status"] == "failed" and str(bad) in df.loc[ids[1], "error"]
    assert (df.loc[[ids[0], ids[2]], "status"] == "done").all()
