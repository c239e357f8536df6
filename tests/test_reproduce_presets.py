"""Reproduction presets: data, validation, and the one sweep spec they expand to."""

from __future__ import annotations

import math

import pytest
import yaml

from gridsweep.errors import ConfigError
from gridsweep.reproduce.presets import PRESET_DIR, PRESET_NAMES, base_config, build_cases, load_preset
from gridsweep.reproduce.run import build_spec


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_expands_to_one_valid_spec_and_states_its_scale(name):
    p = load_preset(name)
    assert len(p.scale) > 40 and p.base
    spec, mem, base, text = build_spec(p)
    ids = {t.trial_id for t in spec.expand()}
    assert ids == {m["trial_id"] for m in mem}
    groups = {m["group"] for m in mem}
    enabled = {g for g in ("targets", "sigma", "multifield", "dog", "arch") if getattr(p.groups, g).enabled}
    assert groups == enabled and {"targets", "dog"} <= enabled
    assert yaml.safe_load(text)["name"] == f"reproduce_{name}"


def test_shared_conditions_are_one_trial():
    """The base DoS network belongs to five groups and is trained once."""
    p = load_preset("tiny")
    spec, mem, base, _ = build_spec(p)
    b = base_config(p)
    shared = [m for m in mem if m["seed"] == 0 and (
        (m["group"] == "targets" and m["condition"] == "dos")
        or (m["group"] == "sigma" and math.isclose(m["sigma"], b.target.sigma))
        or (m["group"] == "multifield" and m["condition"] == "homogeneous")
        or (m["group"] == "dog" and m["condition"] == "dos")
        or (m["group"] == "arch" and m["condition"] == "rnn"))]
    assert len(shared) == 5 and len({m["trial_id"] for m in shared}) == 1
    assert len(mem) > len(spec.expand())


def test_conditions_resolve_to_the_published_targets():
    p = load_preset("tiny")
    spec, mem, _, _ = build_spec(p)
    cfg = {t.trial_id: t.config for t in spec.expand()}
    by = {(m["group"], m["condition"]): cfg[m["trial_id"]] for m in mem if m["seed"] == 0}
    assert by[("targets", "cartesian")].target.n_cells == 2
    assert by[("targets", "polar_highdim")].target.kind == "polar_highdim"
    ui = by[("dog", "dog_unit_integral")].target
    assert ui.kind == "dog_general"
    assert math.isclose(ui.alpha_e, 1 / (2 * math.pi * ui.sigma ** 2), rel_tol=1e-8)
    assert math.isclose(ui.alpha_i, 1 / (2 * math.pi * ui.sigma_i ** 2), rel_tol=1e-8)
    het = by[("multifield", "heterogeneous")].target.heterogeneity
    assert het.fields_lambda == 3 and het.sigma_range == (0.06, 1.0) and het.surround_width_ratio_range == (1.25, 4.5)
    mild = by[("multifield", "heterogeneous_mild")].target.heterogeneity
    assert mild.sigma_range == (0.06, 0.18) and mild.surround_width_ratio_range == (1.5, 2.5)
    single = by[("multifield", "multifield_single_scale")].target.heterogeneity
    assert single.sigma_range is None and single.surround_width_ratio_range is None
    assert by[("arch", "gru")].model.cell == "gru"
    sig = sorted(m["sigma"] for m in mem if m["group"] == "sigma" and m["seed"] == 0)
    assert sig == sorted(p.groups.sigma.sigmas)


def test_base_is_one_field(tmp_path):
    """Switching the base config is a one-line change of the preset."""
    text = (PRESET_DIR / "tiny.yaml").read_text().replace("base: demo_small", "base: nfl_ideal")
    (tmp_path / "p.yaml").write_text(text)
    p = load_preset(tmp_path / "p.yaml")
    assert base_config(p).training.learning_rate == 1e-4  # nfl_ideal's, not demo_small's 1e-3
    assert base_config(p).model.hidden_size == 24  # the preset's overrides still apply


def test_full_preset_is_the_published_sweep():
    p = load_preset("full")
    b = base_config(p)
    assert (b.model.hidden_size, b.target.n_cells, b.training.n_steps) == (1024, 512, 200_000)
    sig = p.groups.sigma.sigmas
    assert [round(s, 2) for s in sig[:13]] == [round(0.08 + 0.01 * i, 2) for i in range(13)]
    assert sig[13:] == [0.24, 0.28, 0.32]
    assert p.groups.sigma.surround_width_ratios == [1.5, 2.0, 2.5, 3.0, 4.0]


@pytest.mark.parametrize("patch, message", [
    ({"groups": {"targets": {"kinds": ["dos", "hexagons"]}}}, "groups.targets.kinds"),
    ({"bogus": 1}, "bogus: unknown key"),
    ({"rules": {"unit_threshold": 0.5}}, "unit_threshold"),
    ({"base": "no_such_config"}, "no such file or shipped config"),
    ({"groups": {"multifield": {"condition_seeds": {"hexagons": 5}}}}, "groups.multifield.condition_seeds: 'hexagons'"),
    ({"groups": {"targets": {"condition_seeds": {"dos": 0}}}}, r"groups.targets.condition_seeds.dos=0"),
    ({"groups": {"dog": {"condition_seeds": {"dos": []}}}}, r"groups.dog.condition_seeds.dos=\[\]"),
])
def test_bad_presets_fail_with_one_line_naming_the_field(tmp_path, patch, message):
    data = yaml.safe_load((PRESET_DIR / "tiny.yaml").read_text())
    for k, v in patch.items():
        data[k] = v
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        p = load_preset(f)
        build_cases(p)


def test_condition_seeds_override_the_group_and_keep_shared_trials(tmp_path):
    """Seeds of one condition: more where a claim needs them, the rest unchanged, shared networks once."""
    data = yaml.safe_load((PRESET_DIR / "tiny.yaml").read_text())
    data["seeds"] = 2
    data["groups"]["multifield"] = {**data["groups"].get("multifield", {}), "seeds": 5,
                                    "condition_seeds": {"heterogeneous": [0, 1]}}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(data))
    p = load_preset(f)
    spec, mem, _, _ = build_spec(p)
    seeds = {}
    for m in mem:
        seeds.setdefault((m["group"], m["condition"]), set()).add(m["seed"])
    assert seeds[("multifield", "heterogeneous")] == {0, 1}
    assert seeds[("multifield", "homogeneous")] == set(range(5))
    assert seeds[("targets", "dos")] == {0, 1}
    # the homogeneous condition is the base DoS network: its seeds 0 and 1 are the targets group's trials
    hom = {m["seed"]: m["trial_id"] for m in mem if m["group"] == "multifield" and m["condition"] == "homogeneous"}
    dos = {m["seed"]: m["trial_id"] for m in mem if m["group"] == "targets" and m["condition"] == "dos"}
    assert hom[0] == dos[0] and hom[1] == dos[1]
    assert len({t.trial_id for t in spec.expand()}) == len({m["trial_id"] for m in mem})


def test_unknown_preset_name():
    with pytest.raises(ConfigError, match="tiny, quick, full"):
        load_preset("enormous")


def test_quick_seeds_has_five_seeds_where_the_claims_need_them_and_shares_quick_networks():
    """R1 and R2 (targets), B1 (dog) and B2 (homogeneous vs single-scale cells) rest on >= 5 networks each;
    the groups those claims do not read are left to ``quick``; seeds 0 and 1 are quick's networks."""
    spec, mem, _, _ = build_spec(load_preset("quick_seeds"))
    seeds: dict[tuple[str, str], set[int]] = {}
    for m in mem:
        seeds.setdefault((m["group"], m["condition"]), set()).add(m["seed"])
    need = [("targets", k) for k in ("cartesian", "polar_highdim", "gaussian", "dos", "dog_equinorm")]
    need += [("dog", c) for c in ("dos", "dog_equinorm", "dog_unit_integral")]
    need += [("multifield", "homogeneous"), ("multifield", "multifield_single_scale")]
    assert all(len(seeds[k]) >= 5 for k in need), {k: len(seeds[k]) for k in need}
    assert set(seeds) == set(need)  # no sigma sweep, heterogeneous cells or GRU: quick has those
    assert len(spec.expand()) == 35  # the number docs/quick-preset.md prices
    quick = {t.trial_id for t in build_spec(load_preset("quick"))[0].expand()}
    first_two = {m["trial_id"] for m in mem if m["seed"] in (0, 1)}
    assert first_two < quick  # seeds 0 and 1 are the quick preset's networks
