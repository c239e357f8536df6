"""Sweep specs: expansion, ranges, W&B translation, errors that name the line, shipped specs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import gridsweep
from gridsweep.config import RunConfig
from gridsweep.errors import ConfigError
from gridsweep.sweeps.spec import SpecError, load_spec

TINY_BASE = """\
base:
  target: {n_cells: 16, surround_width_ratio: 2.0}
  model: {hidden_size: 16}
  trajectory: {batch_size: 8}
  training: {n_steps: 5}
  evaluation: {n_trajectories: 8}
"""

SPEC_DIR = Path(gridsweep.__file__).parent / "configs" / "sweeps"


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_line(err: pytest.ExceptionInfo, path: Path) -> int:
    m = re.match(rf"{re.escape(str(path))}:(\d+): ", str(err.value))
    assert m, f"error does not start with file:line: {err.value}"
    return int(m.group(1))


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


# --------------------------------------------------------------------------------------
def test_grid_random_seeds_expand_deterministically(tmp_path):
    p = write(tmp_path, "name: demo\n" + TINY_BASE + """\
grid:
  target.sigma: {low: 0.08, high: 0.12, step: 0.01}
  model.activation: [relu, tanh]
random:
  n: 3
  seed: 7
  training.learning_rate: {low: 1e-5, high: 1e-3, log: true}
  trajectory.batch_size: {low: 30, high: 180}
seeds: [0, 1]
""")
    spec = load_spec(p)
    trials = spec.expand()
    assert spec.name == "demo" and len(trials) == 5 * 2 * 3 * 2
    again = load_spec(p).expand()
    assert [t.trial_id for t in trials] == [t.trial_id for t in again]
    for t in trials:
        assert t.trial_id == t.config.hash() == RunConfig.model_validate(t.config.to_dict()).hash()
        assert 1e-5 <= t.config.training.learning_rate <= 1e-3
        assert isinstance(t.params["trajectory.batch_size"], int) and 30 <= t.params["trajectory.batch_size"] <= 180
    assert sorted({t.config.target.sigma for t in trials}) == [0.08, 0.09, 0.1, 0.11, 0.12]
    assert {t.config.seed for t in trials} == {0, 1}
    assert len({t.trial_id for t in trials}) == len(trials)
    # the sampler seed matters; the network seed does not change the draws
    other = load_spec(write(tmp_path, p.read_text().replace("seed: 7", "seed: 8"), "b.yaml")).expand()
    assert {t.params["training.learning_rate"] for t in other}.isdisjoint({t.params["training.learning_rate"]
                                                                           for t in trials})


def test_ranges_num_log_seed_count_and_dedup(tmp_path):
    p = write(tmp_path, TINY_BASE + """\
grid:
  training.learning_rate: {low: 1e-4, high: 1e-2, num: 3, log: true}
  target.n_cells: [16, 16]
seeds: 2
""", "my_sweep.yaml")
    spec = load_spec(p)
    trials = spec.expand()
    assert spec.name == "my_sweep"  # from the file name
    assert len(trials) == 3 * 2  # duplicate value collapsed
    assert sorted({t.config.training.learning_rate for t in trials}) == [1e-4, 1e-3, 1e-2]


def test_base_file_relative_to_spec_and_cases(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "base.yaml").write_text(
        "target: {n_cells: 16, surround_width_ratio: 2.0}\nmodel: {hidden_size: 16}\n"
        "trajectory: {batch_size: 8}\ntraining: {n_steps: 5}\n")
    p = write(tmp_path, """\
name: het
base: cfg/base.yaml
cases:
  - {}
  - target.heterogeneity: {fields_lambda: 3.0, sigma_range: [0.06, 1.0], surround_width_ratio_range: [1.25, 4.5]}
seeds: 2
""")
    trials = load_spec(p).expand()
    assert len(trials) == 4
    assert trials[0].config.target.heterogeneity is None
    assert trials[2].config.target.heterogeneity.sigma_range == (0.06, 1.0)
    assert trials[0].config.model.hidden_size == 16


@pytest.mark.parametrize("body, needle, words", [
    ("grid:\n  model.hiden_size: [16, 32]\n", "model.hiden_size", "unknown parameter"),
    ("grid:\n  model.hidden_size: []\n", "model.hidden_size", "empty"),
    ("grid: {}\n", "grid:", "empty"),
    ("grid:\n  model.hidden_size: 16\n", "model.hidden_size", "must be a list"),
    ("grid:\n  model.hidden_size:\n    - 16\n    - lots\n", "- lots", "valid integer"),
    ("grid:\n  target.kind: [cartesian]\n", "target.kind", "cartesian"),
    ("random:\n  n: 2\n  training.learning_rate: {low: 1e-5, high: 1e-3}\n", "random:", "seed"),
    ("random:\n  n: 2\n  seed: 0\n  training.learning_rate: {low: 1e-5, hi: 1e-3}\n", "training.learning_rate",
     "unknown range key"),
    ("seeds: [0, x]\n", "seeds:", "integers"),
    ("grids:\n  model.hidden_size: [16]\n", "grids:", "did you mean 'grid'"),
])
def test_bad_specs_name_the_line(tmp_path, body, needle, words):
    p = write(tmp_path, TINY_BASE + body)
    with pytest.raises(SpecError) as err:
        load_spec(p)
    assert error_line(err, p) == line_of(p, needle), str(err.value)
    assert words in str(err.value)
    assert isinstance(err.value, ConfigError)


def test_bad_base_value_names_base_line(tmp_path):
    p = write(tmp_path, TINY_BASE.replace("n_steps: 5", "n_steps: -5") + "grid:\n  seed: [0, 1]\n")
    with pytest.raises(SpecError) as err:
        load_spec(p)
    assert error_line(err, p) == line_of(p, "n_steps")


def test_yaml_syntax_error_names_line(tmp_path):
    p = write(tmp_path, TINY_BASE + "grid:\n  model.cell: [rnn, gru\n")
    with pytest.raises(SpecError, match=r"spec.yaml:\d+: not valid YAML"):
        load_spec(p)


# --------------------------------------------------------------------------------------
# W&B sweep files
# --------------------------------------------------------------------------------------
def test_wandb_grid_with_nfl_names(tmp_path):
    p = write(tmp_path, TINY_BASE + """\
program: run_trainer.py
method: grid
metric: {goal: minimize, name: pos_decoding_err}
parameters:
  rnn_type: {values: [RNN, GRU]}
  activation: {values: [relu]}
  Ng: {value: 16}
  Np: {values: [16]}
  place_cell_rf: {values: [0.1, 0.12]}
  surround_scale: {values: [2.0]}
  learning_rate: {values: [1e-3]}
  optimizer: {values: [adam]}
  n_epochs: {values: [2]}
  n_grad_steps_per_epoch: {values: [3]}
  is_periodic: {values: [false]}
  seed: {values: [0, 1, 2]}
""")
    spec = load_spec(p)
    assert spec.fmt == "wandb"
    trials = spec.expand()
    assert len(trials) == 2 * 2 * 3
    c = trials[0].config
    assert c.model.cell == "rnn" and c.target.surround_width_ratio == 2.0 and c.training.n_steps == 6
    assert c.box.boundary == "solid" and c.target.sigma == 0.1
    assert {t.config.model.cell for t in trials} == {"rnn", "gru"}


def test_wandb_random_run_cap_and_parameter_map(tmp_path):
    p = write(tmp_path, TINY_BASE + """\
method: random
run_cap: 6
random_seed: 3
parameter_map:
  arch: {to: model.cell, values: {vanilla: rnn, gated: gru}}
  wandb_note: null
parameters:
  arch: {values: [vanilla, gated]}
  wandb_note: {values: [a, b]}
  learning_rate: {distribution: log_uniform_values, min: 1e-5, max: 1e-2}
  batch_size: {distribution: int_uniform, min: 4, max: 12}
seeds: [0, 1]
""")
    trials = load_spec(p).expand()
    assert len(trials) == 6
    assert {t.config.seed for t in trials} == {0, 1}
    for t in trials:
        assert t.config.model.cell in ("rnn", "gru")
        assert 1e-5 <= t.config.training.learning_rate <= 1e-2
        assert 4 <= t.config.trajectory.batch_size <= 12


@pytest.mark.parametrize("body, needle, words", [
    ("method: grid\nparameters:\n  mystery_flag: {values: [1, 2]}\n", "mystery_flag", "parameter_map"),
    ("method: random\nparameters:\n  learning_rate: {distribution: log_uniform_values, min: 0, max: 1}\n",
     "learning_rate", "min > 0"),
    ("method: grid\nparameters:\n  learning_rate: {distribution: uniform, min: 0.1, max: 0.2}\n",
     "learning_rate", "needs 'values'"),
    ("method: bayes\nparameters:\n  learning_rate: {values: [1e-3]}\n", "method:", "bayes"),
    ("method: grid\nparameters:\n  rnn_type: {values: [RNN, BaninoRNN]}\n", "BaninoRNN", "gridsweep runs"),
])
def test_wandb_errors_name_the_line(tmp_path, body, needle, words):
    p = write(tmp_path, TINY_BASE + body)
    with pytest.raises(SpecError) as err:
        load_spec(p)
    assert error_line(err, p) == line_of(p, needle), str(err.value)
    assert words in str(err.value)


# --------------------------------------------------------------------------------------
# the published sweeps shipped in configs/sweeps/
# --------------------------------------------------------------------------------------
def test_shipped_specs_expand_to_their_stated_size():
    files = sorted(SPEC_DIR.glob("*.yaml"))
    names = {f.stem for f in files}
    assert {"nfl_cartesian", "nfl_polar", "nfl_gaussian", "nfl_dos", "nfl_dog_equinorm", "sigma_sweep",
            "heterogeneity", "heterogeneity_mild", "dog_general_amplitude", "architecture_activation",
            "tiny"} <= names
    for f in files:
        m = re.search(r"^# size: (\d+) trials", f.read_text(), re.M)
        assert m, f"{f.name} has no '# size: N trials' comment"
        spec = load_spec(f)
        assert spec.size == int(m.group(1)), f"{f.name}: comment says {m.group(1)}, expands to {spec.size}"
