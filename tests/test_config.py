import pytest

from gridsweep.config import RunConfig, apply_overrides, load_config, validate_config
from gridsweep.errors import ConfigError

PRESETS = ["sorscher_ideal", "nfl_ideal", "banino", "demo_small"]


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_round_trip(name, tmp_path):
    from gridsweep.presets import resolve_config_path

    cfg = load_config(name)  # a preset name works in Python as on the command line
    assert cfg == load_config(resolve_config_path(name))
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    assert load_config(path) == cfg
    assert load_config(path).hash() == cfg.hash()


def test_preset_conventions():
    s = load_config("sorscher_ideal")
    n = load_config("nfl_ideal")
    assert s.target.surround_variance_ratio == 2.0 and s.target.surround_width_ratio is None
    assert n.target.surround_width_ratio == 2.0 and n.target.surround_variance_ratio is None
    assert s.model.hidden_size == 4096 and n.model.hidden_size == 1024
    assert abs(s.target.sigma_i - 0.1697) < 1e-3 and abs(n.target.sigma_i - 0.24) < 1e-12


@pytest.mark.parametrize("override, field", [
    (["model.hiden_size=3"], "model.hiden_size"),
    (["model.hidden_size=abc"], "model.hidden_size"),
    (["target.sigma=-0.1"], "target.sigma"),
    (["target.kind=cartesian"], "n_cells"),
    (["model.cell=transformer"], "model.cell"),
    (["training.optimizer=lbfgs"], "training.optimizer"),
    (["target.surround_width_ratio=2.0"], "both set"),
    (["training.lr_milestones=[500, 200]"], "training.lr_milestones"),
    (["training.lr_milestones=[0]"], "training.lr_milestones"),
    (["training.lr_gamma=1.5"], "training.lr_gamma"),
])
def test_bad_overrides_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        RunConfig().with_overrides(override)


def test_override_parsing_and_sections():
    d = apply_overrides({}, ["a.b=3", "a.c=[1, 2]", "d=true", "e=null", "f=hello"])
    assert d == {"a": {"b": 3, "c": [1, 2]}, "d": True, "e": None, "f": "hello"}
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["novalue"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="mapping"):
        validate_config([1, 2])


@pytest.mark.parametrize("args, needle", [
    (["train", "sorscher_ideal", "--set", "model.hiden=3"], "model.hiden: unknown key"),
    (["train", "sorscher_ideal", "--set", "target.sigma=-1"], "target.sigma"),
    (["train", "sorscher_ideal", "--set", "target.kind=cartesian"], "n_cells"),
    (["train", "no_such_preset"], "neither a file nor a preset"),
])
def test_cli_rejects_bad_configs_with_one_line(args, needle, capsys):
    from gridsweep.cli import main

    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], err


def test_retired_keys_of_old_configs_load_with_a_warning_and_do_not_change_the_hash(tmp_path):
    # config.yaml files written before target.decoder and evaluation.n_batches_during_training
    # were removed (they never changed a run) must still load, as the config they described.
    d = RunConfig().to_dict()
    assert "decoder" not in d["target"] and "n_batches_during_training" not in d["evaluation"]
    d["target"]["decoder"] = "topk"
    d["evaluation"]["n_batches_during_training"] = 1
    old = tmp_path / "config.yaml"
    import yaml

    old.write_text(yaml.safe_dump(d))
    with pytest.warns(DeprecationWarning) as record:
        cfg = load_config(old)
    messages = " ".join(str(w.message) for w in record)
    assert "decoder is retired" in messages and "n_batches_during_training is retired" in messages
    assert cfg == RunConfig() and cfg.hash() == RunConfig().hash()
    with pytest.warns(DeprecationWarning, match="n_batches_during_training is retired"):
        validate_config({"evaluation": {"n_batches_during_training": 4}})
    # a key that was never a field is still an error
    with pytest.raises(ConfigError, match="target.decoderr: unknown key"):
        validate_config({"target": {"decoderr": "topk"}})
