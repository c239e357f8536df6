"""The No Free Lunch lab's own W&B sweep files run unchanged (tests/fixtures/nfl_sweeps/).

Counts are checked against the product of each file's value lists computed here from the
YAML; skipped points and merged points are re-derived here from NFL's rules
(helper_classes.py, model.py, trainer.py of FieteLab/NeurIPS-2022-No-Free-Lunch@d9edec2),
independently of gridsweep.sweeps.wandb_spec.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gridsweep.errors import ConfigError
from gridsweep.sweeps.cli import app
from gridsweep.sweeps.runner import run_sweep
from gridsweep.sweeps.spec import SpecError, load_spec
from gridsweep.sweeps.specfile import SkipPoint, allowed_values, check_key
from gridsweep.sweeps.wandb_spec import (
    DEFAULT_PARAMETER_MAP,
    NFL_CONVENTIONS,
    WANDB_KEYS,
    mapping_table,
    nfl_floats,
    translate_nfl,
)

FIXTURES = Path(__file__).parent / "fixtures" / "nfl_sweeps"
FILES = sorted(FIXTURES.glob("*.yaml"))
DOCS = Path(__file__).parent.parent / "docs" / "sweeps.md"
BIG = {"pc_ce_dog_global", "cartesian_mse", "pc_ce_true_dog_global"}  # > 2000 points: a few seconds each

TINY_BASE = """\
base:
  target: {n_cells: 16, surround_width_ratio: 2.0}
  model: {hidden_size: 16}
  trajectory: {batch_size: 8}
  training: {n_steps: 5}
  evaluation: {n_trajectories: 8}
"""


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _values(doc: dict, flag: str) -> list:
    return doc["parameters"].get(flag, {}).get("values", [None])


def _expected(doc: dict) -> tuple[int, int, int]:
    """(points, skipped, merged) of a grid file, from NFL's rules restated here."""
    params = doc["parameters"]
    points = math.prod(len(p["values"]) for p in params.values())
    rel = ["place_field_loss", "place_field_values", "place_field_normalization", "surround_scale", "rnn_type",
           "optimizer"]
    lists = [_values(doc, f) for f in rel]
    mult = points // math.prod(len(v) for v in lists)
    n_same_ugrnn = math.prod(len(_values(doc, f)) for f in ("initializer", "readout_dropout", "recurrent_dropout"))
    optimizers = allowed_values("training.optimizer")
    skipped = merged = 0
    for loss, values, norm, s, cell, opt in itertools.product(*lists):
        place = values in ("gaussian", "difference_of_gaussians", "true_difference_of_gaussians",
                           "general_difference_of_gaussians", "softmax_of_differences")
        low = nfl_floats(s)[0] if isinstance(s, str) else s
        skip = (place and norm == "local"  # helper_classes.py:373-379 raises
                or place and loss == "crossentropy" and norm != "global"  # model.py:19-23 raises
                or values == "difference_of_gaussians" and low <= 1  # helper_classes.py:287-289 asserts
                or opt not in optimizers)  # adagrad
        if skip:
            skipped += mult
        elif cell == "UGRNN":  # NFL's UGRNN ignores initializer and both dropouts (model.py:497-501)
            merged += mult - mult // n_same_ugrnn
    return points, skipped, merged


def test_the_30_files_are_there():
    assert len(FILES) == 30
    assert sum(_yaml(f)["method"] == "random" for f in FILES) == 6  # pc_ce_general_dog_global_random is a grid
    assert all("run_cap" not in _yaml(f) for f in FILES)


@pytest.mark.parametrize("path", [pytest.param(f, id=f.stem, marks=[pytest.mark.slow] if f.stem in BIG else [])
                                  for f in FILES if _yaml(f)["method"] == "grid"])
def test_grid_file_expands_to_the_product(path):
    doc = _yaml(path)
    points, skipped, merged = _expected(doc)
    spec = load_spec(path)
    trials = spec.expand()
    assert sum(spec.skipped.values()) == skipped, spec.skipped
    assert spec.n_duplicates == merged
    assert len(trials) + skipped + merged == points
    assert len({t.trial_id for t in trials}) == len(trials)
    for t in trials[:50]:
        assert t.config.model.family == NFL_CONVENTIONS["model.family"]
        assert t.config.training.optimizer_convention == NFL_CONVENTIONS["training.optimizer_convention"]
        assert t.config.evaluation.protocol == NFL_CONVENTIONS["evaluation.protocol"]
        n_epochs, per_epoch = t.params["n_epochs"], t.params["n_grad_steps_per_epoch"]
        assert t.config.training.n_steps == n_epochs * per_epoch


@pytest.mark.parametrize("path", [pytest.param(f, id=f.stem) for f in FILES if _yaml(f)["method"] == "random"])
def test_random_file_without_run_cap_draws_a_stated_number(path):
    doc = _yaml(path)
    spec = load_spec(path)
    assert spec.needs_count
    with pytest.raises(SpecError, match=r"--max-trials N.*run_cap"):
        spec.expand()
    ten, four = spec.with_trials(10).expand(), spec.with_trials(4).expand()
    assert len(ten) == 10 and len({t.trial_id for t in ten}) == 10
    assert [t.trial_id for t in four] == [t.trial_id for t in ten[:4]]  # a prefix-stable seeded stream
    for t in ten:
        for flag, value in t.params.items():
            if flag in doc["parameters"]:
                assert value in doc["parameters"][flag]["values"], (flag, value)


def test_every_flag_is_mapped_or_documented():
    flags = set().union(*(_yaml(f)["parameters"] for f in FILES))
    top = set().union(*(_yaml(f) for f in FILES))
    assert flags <= set(DEFAULT_PARAMETER_MAP), flags - set(DEFAULT_PARAMETER_MAP)
    assert top <= set(WANDB_KEYS)
    for name, m in DEFAULT_PARAMETER_MAP.items():
        if m.fields:
            for f in m.fields:
                assert check_key(f)[0], (name, f, check_key(f)[1])
        else:
            assert m.note.startswith("no effect here because"), name
    for name in ("program", "project", "metric"):
        assert WANDB_KEYS[name].startswith("no effect here because")
    # docs/sweeps.md carries the table the code renders
    assert mapping_table() in DOCS.read_text()


@pytest.mark.parametrize("raw, want", [
    ({"place_field_loss": "crossentropy", "place_field_values": "difference_of_gaussians",
      "place_field_normalization": "global", "place_cell_rf": 0.12, "surround_scale": 2.0},
     {"target.kind": "dos", "target.sigma": 0.12, "target.surround_width_ratio": 2.0}),
    ({"place_field_loss": "crossentropy", "place_field_values": "true_difference_of_gaussians",
      "place_field_normalization": "global", "place_cell_rf": 0.2, "surround_scale": 3.0},
     {"target.kind": "dog_equinorm", "target.sigma": 0.2, "target.surround_width_ratio": 3.0}),
    ({"place_field_loss": "crossentropy", "place_field_values": "general_difference_of_gaussians",
      "place_field_normalization": "global", "place_cell_rf": 0.12, "surround_scale": 2.0,
      "place_cell_alpha_e": 0.4, "place_cell_alpha_i": 2.51},
     {"target.kind": "dog_general", "target.sigma": 0.12, "target.surround_width_ratio": 2.0,
      "target.alpha_e": 0.4, "target.alpha_i": 2.51}),
    ({"place_field_loss": "crossentropy", "place_field_values": "softmax_of_differences",
      "place_field_normalization": "global", "place_cell_rf": 0.09, "surround_scale": 1.5},
     {"target.kind": "sod", "target.sigma": 0.09, "target.surround_width_ratio": 1.5}),
    ({"place_field_loss": "crossentropy", "place_field_values": "gaussian", "place_field_normalization": "global",
      "place_cell_rf": 0.01, "surround_scale": 0.0},  # banino.yaml: the surround is never read
     {"target.kind": "gaussian", "target.sigma": 0.01}),
    ({"place_field_loss": "mse", "place_field_values": "cartesian", "place_field_normalization": "none",
      "place_cell_rf": 0.0, "surround_scale": 1.0, "Np": 2},
     {"target.kind": "cartesian", "target.mse_reduction": "mean", "target.n_cells": 2}),
    ({"place_field_loss": "mse", "place_field_values": "high_dim_polar", "place_field_normalization": "none"},
     {"target.kind": "polar_highdim", "target.mse_reduction": "mean"}),
    ({"place_field_loss": "crossentropy", "place_field_values": "difference_of_gaussians",
      "place_field_normalization": "global", "n_place_fields_per_cell": "Poisson( 3.0 )",
      "place_cell_rf": "Uniform( 0.06 , 1.0 )", "surround_scale": "Uniform( 1.25 , 4.50 )"},
     {"target.kind": "dos", "target.heterogeneity": {
         "fields_lambda": 3.0, "sigma_range": [0.06, 1.0], "surround_width_ratio_range": [1.25, 4.5],
         "field_rule": "max_response"}}),
    ({"place_field_loss": "crossentropy", "place_field_values": "difference_of_gaussians",
      "place_field_normalization": "global", "n_place_fields_per_cell": 1.0,
      "place_cell_rf": "Uniform( 0.06 , 0.18 )", "surround_scale": 2.0},
     {"target.kind": "dos", "target.surround_width_ratio": 2.0, "target.heterogeneity": {
         "fields_lambda": 0.0, "sigma_range": [0.06, 0.18], "field_rule": "max_response"}}),
    ({"n_epochs": 20, "n_grad_steps_per_epoch": 10000, "readout_dropout": 0.5, "recurrent_dropout": 0.2,
      "rnn_type": "LSTM", "initializer": "orthogonal", "optimizer": "rmsprop", "is_periodic": False, "Ng": 1024},
     {"training.n_steps": 200000, "training.eval_every": 10000, "model.input_dropout": 0.5,
      "model.recurrent_dropout": 0.2, "model.cell": "lstm", "model.bias": True, "model.init": "orthogonal",
      "training.optimizer": "rmsprop", "box.boundary": "solid", "model.hidden_size": 1024}),
    ({"rnn_type": "UGRNN", "initializer": "orthogonal", "readout_dropout": 0.5, "recurrent_dropout": 0.5},
     {"model.cell": "ugrnn", "model.bias": True, "model.init": "glorot_uniform", "model.input_dropout": 0.0,
      "model.recurrent_dropout": 0.0}),
    ({"rnn_type": "RNN"}, {"model.cell": "rnn", "model.bias": False}),
    ({"optimizer": "adagrad"}, {"training.optimizer": "adagrad"}),
    ({"place_field_loss": "mse", "place_field_values": "gaussian", "place_field_normalization": "global",
      "place_cell_rf": 0.12},
     {"target.kind": "gaussian", "target.loss": "mse", "target.mse_reduction": "mean", "target.sigma": 0.12}),
    ({"place_field_loss": "mse", "place_field_values": "gaussian", "place_field_normalization": "none"},
     {"target.kind": "gaussian", "target.loss": "mse", "target.mse_reduction": "mean",
      "target.normalization": "none"}),
    ({"place_field_loss": "mse", "place_field_values": "difference_of_gaussians",
      "place_field_normalization": "global", "surround_scale": 2.5},
     {"target.kind": "dos", "target.loss": "mse", "target.mse_reduction": "mean",
      "target.surround_width_ratio": 2.5}),
    ({"place_field_loss": "mse", "place_field_values": "difference_of_gaussians",  # exp - exp: NFL's true DoG
      "place_field_normalization": "none", "surround_scale": 2.0},
     {"target.kind": "dog_equinorm", "target.loss": "mse", "target.mse_reduction": "mean",
      "target.surround_width_ratio": 2.0}),
    ({"place_field_loss": "mse", "place_field_values": "softmax_of_differences",  # never reads the normalisation
      "place_field_normalization": "none", "surround_scale": 2.0},
     {"target.kind": "sod", "target.loss": "mse", "target.mse_reduction": "mean",
      "target.surround_width_ratio": 2.0}),
])
def test_translate_nfl_known_answers(raw, want):
    assert translate_nfl(raw) == want


@pytest.mark.parametrize("raw, words", [
    ({"place_field_loss": "mse", "place_field_values": "gaussian", "place_field_normalization": "local"}, "'local'"),
    ({"place_field_loss": "mse", "place_field_values": "difference_of_gaussians",
      "place_field_normalization": "local", "surround_scale": 2.0}, "helper_classes.py:373-379"),
    ({"place_field_loss": "mse", "place_field_values": "difference_of_gaussians",
      "place_field_normalization": "none", "surround_scale": 1.0}, "helper_classes.py:287-289"),
    ({"place_field_loss": "crossentropy", "place_field_values": "gaussian", "place_field_normalization": "none"},
     "model.py:19-23"),
    ({"place_field_loss": "crossentropy", "place_field_values": "difference_of_gaussians",
      "place_field_normalization": "global", "surround_scale": 1.0}, "helper_classes.py:287-289"),
    ({"place_field_loss": "mse", "place_field_values": "high_dim_cartesian", "place_field_normalization": "none",
      "n_place_fields_per_cell": "Poisson( 2.0 )"}, "no gridsweep equivalent"),
])
def test_translate_nfl_skips_with_reasons(raw, words):
    with pytest.raises(SkipPoint, match=re.escape(words)):
        translate_nfl(raw)


def _n_points(doc: dict, **fixed) -> int:
    """Points of a grid file whose flags take the given values (counted from the YAML)."""
    params = doc["parameters"]
    n = 1
    for flag, p in params.items():
        vals = p["values"]
        n *= sum(v == fixed[flag] for v in vals) if flag in fixed else len(vals)
    return n


@pytest.mark.parametrize("stem", ["pc_ce_dog_global_good_grid_cells_optimizer",
                                  "pc_ce_dog_global_good_grid_cells_optimizer_2"])
def test_adagrad_points_are_keras_adagrad_trials(stem):
    path = FIXTURES / f"{stem}.yaml"
    doc = _yaml(path)
    want = _n_points(doc, optimizer="adagrad")
    assert want > 0
    spec = load_spec(path)
    trials = spec.expand()
    ada = [t for t in trials if t.params["optimizer"] == "adagrad"]
    ugrnn = _n_points(doc, optimizer="adagrad", rnn_type="UGRNN") if "UGRNN" in _values(doc, "rnn_type") else 0
    n_same = math.prod(len(_values(doc, f)) for f in ("initializer", "readout_dropout", "recurrent_dropout"))
    assert len(ada) == want - (ugrnn - ugrnn // n_same)
    assert not any("adagrad" in reason for reason in spec.skipped)
    for t in ada:
        tr = t.config.training
        assert (tr.optimizer, tr.optimizer_convention) == ("adagrad", "keras")
        assert (tr.adagrad_initial_accumulator, tr.adagrad_epsilon) == (None, None)  # Keras's 0.1 and 1e-7


@pytest.mark.parametrize("stem", ["pc_mse_g_global_other", "pc_mse_dog_global_other"])
def test_place_cell_mse_points_are_trials(stem):
    path = FIXTURES / f"{stem}.yaml"
    doc = _yaml(path)
    points, skipped, merged = _expected(doc)
    assert skipped == 0  # every point trains now
    trials = load_spec(path).expand()
    assert len(trials) == points - merged > 0
    kind = {"gaussian": "gaussian", "difference_of_gaussians": "dos"}[_values(doc, "place_field_values")[0]]
    for t in trials:
        tg = t.config.target
        assert (tg.kind, tg.loss, tg.loss_name, tg.mse_reduction, tg.normalization) == (kind, "mse", "mse", "mean",
                                                                                        "global")


@pytest.mark.parametrize("stem", ["pc_mse_g_local_other", "pc_mse_dog_local_other"])
def test_local_normalisation_stays_skipped(stem):
    path = FIXTURES / f"{stem}.yaml"
    points, skipped, _ = _expected(_yaml(path))
    spec = load_spec(path)
    assert skipped == points and sum(spec.skipped.values()) == points
    assert all("helper_classes.py:373-379" in reason for reason in spec.skipped)


def test_nfl_floats_needs_spaces_like_nfl():
    assert nfl_floats("Uniform( 0.06 , 0.24 )") == (0.06, 0.24)
    assert nfl_floats("Poisson( 3.0 )") == (3.0,)
    assert nfl_floats("Uniform(0.06,0.24)") == ()  # NFL reads nothing here either (helper_classes.py:584-593)


def test_multi_field_file_builds_nfl_heterogeneity():
    trials = load_spec(FIXTURES / "pc_ce_dog_multiple_fields_and_scales.yaml").expand()
    het = [t.config.target.heterogeneity for t in trials if t.params["n_place_fields_per_cell"] == "Poisson( 3.0 )"
           and t.params["place_cell_rf"] == "Uniform( 0.06 , 1.0 )" and t.params["surround_scale"] == 2.0]
    assert het and all(h.fields_lambda == 3.0 and h.sigma_range == (0.06, 1.0) and h.field_rule == "max_response"
                       and h.surround_width_ratio_range is None for h in het)
    assert {t.config.target.surround_width_ratio for t in trials if t.params["surround_scale"] == 2.0} == {2.0}


def test_two_unknown_flags_are_one_error_with_both_lines(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("method: grid\nparameters:\n  Ng: {values: [16]}\n  learnin_rate: {values: [0.1]}\n"
                 "  place_field_values: {values: [gaussian, mexican_hat]}\n  frobnicate: {values: [1]}\n")
    with pytest.raises(SpecError) as err:
        load_spec(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}:4: ")
    assert "'learnin_rate' (line 4; did you mean 'learning_rate'?)" in msg
    assert "'frobnicate' (line 6" in msg
    assert "line 5: place_field_values: 'mexican_hat'" in msg
    assert "\n" not in msg


def _generic_random(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "rand.yaml"
    p.write_text(TINY_BASE + "method: random\n" + extra + "parameters:\n"
                 "  learning_rate: {distribution: log_uniform_values, min: 1e-4, max: 1e-2}\n"
                 "  batch_size: {values: [4, 8, 12]}\n  seed: {values: [0, 1, 2]}\n")
    return p


def test_random_search_seeded_and_capped(tmp_path):
    capped = load_spec(_generic_random(tmp_path, "run_cap: 6\nrandom_seed: 5\n"))
    trials = capped.expand()
    assert len(trials) == 6 and not capped.needs_count
    again = load_spec(_generic_random(tmp_path, "run_cap: 6\nrandom_seed: 5\n")).expand()
    other = load_spec(_generic_random(tmp_path, "run_cap: 6\nrandom_seed: 6\n")).expand()
    assert [t.trial_id for t in again] == [t.trial_id for t in trials]
    assert [t.trial_id for t in other] != [t.trial_id for t in trials]
    for t in trials:
        assert 1e-4 <= t.config.training.learning_rate <= 1e-2 and t.config.trajectory.batch_size in (4, 8, 12)


def _fake_worker(configs, dirs, device, **kw):
    return [{"trial_id": Path(d).name, "status": "done", "loss": 0.0} for d in dirs]


def test_open_ended_random_search_runs_with_max_trials(tmp_path):
    p = _generic_random(tmp_path)
    spec = load_spec(p)
    with pytest.raises(ConfigError, match="max-trials"):
        run_sweep(spec, tmp_path / "o", executor="serial", progress=False, worker=_fake_worker)
    r1 = run_sweep(spec, tmp_path / "o", executor="serial", progress=False, worker=_fake_worker, max_trials=3,
                   analysis="none")
    assert r1.counts["done"] == 3
    r2 = run_sweep(load_spec(p), tmp_path / "o", executor="serial", progress=False, worker=_fake_worker,
                   max_trials=2, analysis="none")
    assert r2.n_recorded == 2 and r2.counts["done"] == 5 and r2.n_trials == 5
    from gridsweep.sweeps.store import TrialStore

    store = TrialStore(tmp_path / "o")
    try:
        assert set(store.ids()) == {t.trial_id for t in spec.with_trials(5).expand()}
    finally:
        store.close()


def test_cli_random_without_run_cap(tmp_path):
    p = _generic_random(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["expand", str(p)])
    assert res.exit_code == 0 and "--trials N" in res.output
    res = runner.invoke(app, ["expand", str(p), "--trials", "7", "--show", "0"])
    assert res.exit_code == 0 and "rand: 7 trials" in res.output
    res = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    err = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "--max-trials N" in err[0]


def test_cli_expands_an_nfl_file_in_process():
    path = FIXTURES / "pc_ce_dog_nayebi.yaml"
    points, skipped, merged = _expected(_yaml(path))
    res = CliRunner().invoke(app, ["expand", str(path), "--show", "1"])
    assert res.exit_code == 0, res.output
    assert f"sweep pc_ce_dog_nayebi: {points - skipped - merged} trials" in res.output
    assert skipped == 0 and "skipped" not in res.output  # SRNN is NFL's VanillaRNN: model.cell srnn


@pytest.mark.parametrize("rnn_type", ["SRNN", "VanillaRNN", "srnn"])  # utils.py:928 lower-cases either name
def test_srnn_is_nfls_vanilla_rnn(rnn_type):
    assert translate_nfl({"rnn_type": rnn_type}) == {"model.cell": "srnn", "model.bias": True}


def test_nayebi_file_expands_to_its_full_product_with_srnn_trials():
    doc = _yaml(FIXTURES / "pc_ce_dog_nayebi.yaml")
    points, skipped, merged = _expected(doc)
    trials = load_spec(FIXTURES / "pc_ce_dog_nayebi.yaml").expand()
    assert skipped == 0 and len(trials) == points - merged
    srnn = [t for t in trials if t.params["rnn_type"] == "SRNN"]
    assert len(srnn) == points // len(doc["parameters"]["rnn_type"]["values"])
    for t in srnn:
        m = t.config.model
        assert (m.family, m.cell, m.uses_bias, m.hidden_size) == ("nfl", "srnn", True, 4096)
