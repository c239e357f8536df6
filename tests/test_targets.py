import math

import numpy as np
import pytest
import torch

from gridsweep.config import BoxConfig, HeadDirectionConfig, HeterogeneityConfig, TargetConfig
from gridsweep.errors import ConfigError, DataError
from gridsweep.targets import TARGETS, build_head_direction, build_target, decoding_error_cm

BOX = BoxConfig()


def positions(n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, n, 2, generator=g, dtype=torch.float64) - 0.5) * 2.0  # inside +-1.0 m


KINDS = {
    "cartesian": dict(n_cells=2),
    "cartesian_highdim": dict(n_cells=64),
    "polar_highdim": dict(n_cells=64),
    "gaussian": dict(),
    "dos": dict(surround_variance_ratio=2.0),
    "dog_equinorm": dict(surround_width_ratio=2.0),
    "dog_general": dict(surround_width_ratio=2.0, alpha_e=2.0),
    "sod": dict(surround_width_ratio=2.0),
}
#: mean decoding error (cm) of decode(encode(x)) we accept for each encoding
EXPECTED_ERROR_CM = {"cartesian": 1e-6, "cartesian_highdim": 1e-4, "polar_highdim": 6.0, "gaussian": 8.0,
                     "dos": 8.0, "dog_equinorm": 25.0, "dog_general": 10.0, "sod": 8.0}


def _as_outputs(t, y):
    return torch.log(y.clamp_min(1e-300)) if t.loss_name == "cross_entropy" else y


def test_registry_covers_every_encoding():
    assert set(KINDS) == set(TARGETS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_shapes_normalisation_and_round_trip(kind):
    t = build_target(TargetConfig(kind=kind, **KINDS[kind]), 0, BOX, dtype=torch.float64)
    x = positions()
    y = t.encode(x)
    assert y.shape == (1, x.shape[1], t.n_outputs)
    if t.loss_name == "cross_entropy":
        assert float(y.min()) >= 0
        assert torch.allclose(y.sum(-1), torch.ones(1, x.shape[1], dtype=torch.float64))
    err = float(decoding_error_cm(t.decode(_as_outputs(t, y)), x)[0])
    assert err <= EXPECTED_ERROR_CM[kind]


@pytest.mark.parametrize("kind", ["gaussian", "dos", "dog_equinorm", "dog_general", "sod"])
def test_template_decoder_is_accurate_for_place_cells(kind):
    t = build_target(TargetConfig(kind=kind, **KINDS[kind]), 0, BOX, dtype=torch.float64)
    x = positions(500)
    err = float(decoding_error_cm(t.decode_template(_as_outputs(t, t.encode(x)), BOX), x)[0])
    assert err < 5.0


def test_dos_matches_definition():
    cfg = TargetConfig(kind="dos", n_cells=32, sigma=0.1, surround_width_ratio=2.0)
    t = build_target(cfg, 3, BOX, dtype=torch.float64)
    x = positions(10)
    c = t.cell_centres[0].numpy()
    d2 = ((x[0].numpy()[:, None, :] - c[None]) ** 2).sum(-1)

    def softmax(z):
        z = z - z.max(-1, keepdims=True)
        return np.exp(z) / np.exp(z).sum(-1, keepdims=True)

    p = softmax(-d2 / (2 * 0.1**2)) - softmax(-d2 / (2 * 0.2**2))
    p = p + np.abs(p.min(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    np.testing.assert_allclose(t.encode(x)[0].numpy(), p, atol=1e-12)


def test_surround_conventions_give_documented_sigma_i():
    w = TargetConfig(kind="dos", sigma=0.12, surround_width_ratio=2.0)
    v = TargetConfig(kind="dos", sigma=0.12, surround_variance_ratio=2.0)
    assert math.isclose(w.sigma_i, 0.24)
    assert math.isclose(v.sigma_i, 0.12 * math.sqrt(2))
    tw = build_target(w, 0, BOX, dtype=torch.float64)
    tv = build_target(v, 0, BOX, dtype=torch.float64)
    assert torch.allclose(tw.sigma_i, torch.tensor(0.24, dtype=torch.float64))
    assert torch.allclose(tv.sigma_i, torch.tensor(0.12 * math.sqrt(2), dtype=torch.float64))


@pytest.mark.parametrize("bad", [
    dict(kind="dos", surround_width_ratio=2.0, surround_variance_ratio=2.0),
    dict(kind="gaussian", surround_width_ratio=2.0),
    dict(kind="cartesian", n_cells=512),
    dict(kind="polar_highdim", n_cells=63),
    dict(kind="dos", sigma=-0.1, surround_width_ratio=2.0),
    dict(kind="dos", surround_width_ratio=0.5),
])
def test_invalid_target_configs(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TargetConfig(**bad)


def test_centres_come_from_seed_not_global_rng():
    cfg = TargetConfig(kind="gaussian", n_cells=16)
    state = torch.random.get_rng_state()
    a = build_target(cfg, 11, BOX)
    assert torch.equal(state, torch.random.get_rng_state())
    b = build_target(cfg, 11, BOX)
    c = build_target(cfg, 12, BOX)
    assert torch.equal(a.centres, b.centres) and not torch.equal(a.centres, c.centres)
    assert float(a.centres.abs().max()) <= 1.1


def test_ensemble_of_targets_matches_single():
    cfgs = [TargetConfig(kind="dos", sigma=s, surround_width_ratio=2.0, n_cells=32) for s in (0.1, 0.15)]
    ens = build_target(cfgs, [4, 5], BOX, dtype=torch.float64)
    alone = build_target(cfgs[1], 5, BOX, dtype=torch.float64)
    x = positions(20).expand(2, -1, -1)
    assert torch.allclose(ens.encode(x)[1], alone.encode(x[:1])[0])
    assert torch.equal(ens.select(1).centres, alone.centres)


def test_multifield_heterogeneous_cells():
    het = HeterogeneityConfig(fields_lambda=3.0, sigma_range=(0.06, 0.18), surround_width_ratio_range=(1.5, 2.5))
    cfg = TargetConfig(kind="dos", n_cells=512, surround_width_ratio=2.0, heterogeneity=het)
    t = build_target(cfg, 0, BOX, dtype=torch.float64)
    n_fields = t.field_mask[0].sum(-1).double()
    assert abs(float(n_fields.mean()) - 4.0) < 0.3  # 1 + Poisson(3)
    assert int(n_fields.min()) >= 1
    se = t.sigma_e[0][t.field_mask[0]]
    assert 0.06 <= float(se.min()) and float(se.max()) <= 0.18
    ratio = (t.sigma_i[0] / t.sigma_e[0])[t.field_mask[0]]
    assert 1.5 <= float(ratio.min()) and float(ratio.max()) <= 2.5
    x = positions(300)
    y = t.encode(x)
    assert torch.allclose(y.sum(-1), torch.ones(1, 300, dtype=torch.float64))
    err = float(decoding_error_cm(t.decode(torch.log(y)), x)[0])
    assert err < 15.0


def test_nearest_field_rule():
    """A two-field cell responds like a one-field cell at whichever field is nearer."""
    het = HeterogeneityConfig(fields_lambda=0.0)
    t = build_target(TargetConfig(kind="gaussian", n_cells=4, heterogeneity=het), 0, BOX, dtype=torch.float64)
    x = positions(50)
    d2, _, _ = t._responding_field(x)
    direct = ((x[0][:, None, :] - t.cell_centres[0][None]) ** 2).sum(-1)
    assert torch.allclose(d2[0], direct)


def test_nearest_field_of_multifield_cells_against_brute_force():
    """Distance and widths of the nearest real field (padding ignored), from an explicit difference tensor."""
    het = HeterogeneityConfig(fields_lambda=3.0, sigma_range=(0.06, 0.18), max_fields=6, field_rule="nearest")
    t = build_target(TargetConfig(kind="dos", n_cells=32, surround_width_ratio=2.0, heterogeneity=het), [0, 1], BOX,
                     dtype=torch.float64)
    assert t.n_fields == 6 and not bool(t.field_mask.all())  # some padding to ignore
    x = positions(40).expand(2, -1, -1)
    d2, se, si = t._responding_field(x)
    diff2 = ((x[:, :, None, None, :] - t.centres[:, None]) ** 2).sum(-1)  # (E, N, Np, F)
    diff2 = diff2.masked_fill(~t.field_mask[:, None], float("inf"))
    ref, idx = diff2.min(-1)
    assert torch.allclose(d2, ref, atol=1e-12)
    sig = torch.gather(t.sigma_e[:, None].expand(-1, 40, -1, -1), 3, idx[..., None])[..., 0]
    assert torch.equal(se, sig) and torch.allclose(si, 2.0 * se)


def test_head_direction_cells_round_trip():
    hd = build_head_direction(HeadDirectionConfig(n_cells=48, kappa=20.0), [0], torch.float64)
    ang = (torch.rand(1, 500, dtype=torch.float64) * 2 - 1) * math.pi
    y = hd.encode(ang)
    assert torch.allclose(y.sum(-1), torch.ones(1, 500, dtype=torch.float64))
    dec = hd.decode(torch.log(y))
    diff = torch.remainder(dec - ang + math.pi, 2 * math.pi) - math.pi
    assert float(diff.abs().mean()) < math.radians(10)


def test_bad_positions_and_mixed_ensembles_raise():
    t = build_target(TargetConfig(kind="gaussian", n_cells=8), 0, BOX)
    with pytest.raises(DataError, match="positions"):
        t.encode(torch.zeros(5, 3))
    with pytest.raises(ConfigError, match="one target kind"):
        build_target([TargetConfig(kind="gaussian"), TargetConfig(kind="dos", surround_width_ratio=2.0)], [0, 1])


def test_centre_surround_kind_without_surround_takes_sorscher_default():
    cfg = TargetConfig(kind="dos")
    assert cfg.surround_variance_ratio == 2.0 and cfg.surround_width_ratio is None
    w = TargetConfig(kind="dos", surround_width_ratio=3.0)
    assert w.surround_variance_ratio is None
    from gridsweep.config import RunConfig

    assert RunConfig.model_validate({"target": {"n_cells": 16}}).target.surround_variance_ratio == 2.0


def test_network_targets_do_not_depend_on_ensemble_partners():
    """A single-field network batched with multi-field ones gets the targets it has alone."""
    het = HeterogeneityConfig(fields_lambda=3.0)
    cfgs = [TargetConfig(kind="dos", n_cells=32), TargetConfig(kind="dos", n_cells=32, heterogeneity=het)]
    ens = build_target(cfgs, [1, 2], BOX, dtype=torch.float64)
    alone = [build_target(c, s, BOX, dtype=torch.float64) for c, s in zip(cfgs, [1, 2])]
    x = positions(50).expand(2, -1, -1)
    for e in range(2):
        assert torch.allclose(ens.encode(x)[e], alone[e].encode(x[:1])[0])


def test_periodic_box_uses_wrapped_distances():
    """Across a periodic wall, nearby points get nearly the same code (minimum image)."""
    box = BoxConfig(boundary="periodic")
    t = build_target(TargetConfig(kind="dos", n_cells=256, surround_width_ratio=2.0), 0, box, dtype=torch.float64)
    a = torch.tensor([[[1.099, 0.3]]], dtype=torch.float64)
    b = torch.tensor([[[-1.099, 0.3]]], dtype=torch.float64)  # 0.2 cm away through the wall
    ya, yb = t.encode(a)[0, 0], t.encode(b)[0, 0]
    assert float(torch.corrcoef(torch.stack([ya, yb]))[0, 1]) > 0.999
    solid = build_target(TargetConfig(kind="dos", n_cells=256, surround_width_ratio=2.0), 0, BOX, dtype=torch.float64)
    za, zb = solid.encode(a)[0, 0], solid.encode(b)[0, 0]
    assert float(torch.corrcoef(torch.stack([za, zb]))[0, 1]) < 0.5
    x = (torch.rand(1, 300, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) - 0.5) * 2.2
    dec = t.decode(torch.log(t.encode(x)))
    d = torch.remainder(dec - x + 1.1, 2.2) - 1.1  # distance on the torus
    assert float(d.norm(dim=-1).mean()) * 100 < 6.0


def test_sweep_groups_keep_single_field_networks_out_of_multi_field_ensembles():
    """Why group_key separates field counts: padding a single-field network's cells to F > 1
    computes its targets through another distance formula (equal to float32 rounding, not
    necessarily bit for bit), so a sweep never batches the two; same-F networks are exact."""
    from gridsweep.config import RunConfig
    from gridsweep.sweeps.planning import group_key

    a = TargetConfig(kind="dos", n_cells=64, sigma=0.12, surround_width_ratio=2.0)
    b = a.model_copy(update={"heterogeneity": HeterogeneityConfig(fields_lambda=3.0, max_fields=6)})
    x = (torch.rand(2, 500, 2, generator=torch.Generator().manual_seed(0)) - 0.5) * 2.2
    alone = build_target([a], [0], BOX).encode(x[:1])[0]
    padded = build_target([a, b], [0, 1], BOX).encode(x)[0]
    assert torch.allclose(alone, padded, atol=1e-6)
    same = build_target([a, a], [0, 1], BOX).encode(x)[0]
    assert torch.equal(alone, same)
    ra, rb = RunConfig().model_copy(update={"target": a}), RunConfig().model_copy(update={"target": b})
    assert group_key(ra) != group_key(rb)
