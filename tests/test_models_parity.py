"""The model families against the originals (docs/science.md section 3).

Known answers: independent numpy float64 transcriptions of Schaeffer, Khona & Fiete's
Keras models (FieteLab/NeurIPS-2022-No-Free-Lunch at d9edec2,
mec_hpc_investigations/models/model.py) and of the Keras cells they use (keras-team/tf-keras
at dd0a7237b, tf_keras/layers/rnn/*.py), written from those files (lines cited per
function); Sorscher et al.'s model against torch.nn.RNN + nn.Linear themselves; analytic
initialisation distributions; the Keras dropout layouts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gridsweep.config import ModelConfig, RunConfig
from gridsweep.errors import ConfigError
from gridsweep.models import CELLS, PathIntegrator, RecurrentMasks, build_model, keras_dropout_layout
from gridsweep.training import Ensemble

F64 = torch.float64
NP, NOUT, NG, B = 5, 6, 7, 3


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _act(name):
    return {"relu": lambda x: np.maximum(x, 0.0), "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
            "linear": lambda x: x}[name]


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def nfl_model(cell: str, activation: str, seed: int = 0, **kw) -> PathIntegrator:
    """An NFL-family network (E = 1, float64) with every parameter random and non-zero."""
    cfg = ModelConfig(family="nfl", cell=cell, activation=activation, hidden_size=NG, bias=cell != "rnn", **kw)
    m = build_model(cfg, NP, NOUT, [seed], dtype=F64)
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=g, dtype=F64))
    return m


def np_params(m: PathIntegrator) -> dict[str, np.ndarray]:
    """Network 0's parameters as float64 arrays, biases as vectors."""
    return {k: (v[0, 0] if v.shape[1] == 1 else v[0]).detach().numpy().copy() for k, v in m.named_parameters()}


def gru_to_keras(w: np.ndarray, Ng: int) -> np.ndarray:
    """gridsweep's GRU blocks (r, z, n) -> Keras's (z, r, h) along the last axis."""
    r, z, n = w[..., :Ng], w[..., Ng:2 * Ng], w[..., 2 * Ng:]
    return np.concatenate([z, r, n], axis=-1)


# --------------------------------------------------------------------------------------
# numpy transcriptions of NFL's models
# --------------------------------------------------------------------------------------
def ref_nfl_rnn(P, v, p0, act, dp=None, rdp=None):
    """NFL ``RNN`` (model.py:112-122 layers, 140-143 g, 145-148 decoder) with Keras
    SimpleRNNCell.call (simple_rnn.py:194-212): h = act((x*dp) K + (h*rdp) U), no biases."""
    h = p0 @ P["W_enc"]
    gs = []
    for t in range(v.shape[1]):
        x = v[:, t] if dp is None else v[:, t] * dp[0, 0]
        hp = h if rdp is None else h * rdp[0]
        h = act(x @ P["W_ih"] + hp @ P["W_hh"])
        gs.append(h)
    g = np.stack(gs, 1)
    return g, g @ P["W_dec"]


def ref_nfl_lstm(P, v, p0, act, dp=None, rdp=None):
    """NFL ``LSTM`` (model.py:234-245 layers, 252-266 pre_g/g, 268-271 decoder) with Keras
    LSTMCell.call (lstm.py:275-336): implementation 1 (per-gate masks) when recurrent
    dropout is on, else 2; gate order i, f, c, o; unit_forget_bias only sets the init."""
    n = P["W_hh"].shape[0]
    h = p0 @ P["W_enc"] + P["b_enc"]
    c = p0 @ P["W_enc_c"] + P["b_enc_c"]
    Mv = v @ P["W_M"] + P["b_M"]
    K, U, b = P["W_ih"], P["W_hh"], P["b"]
    hs = []
    for t in range(v.shape[1]):
        x = Mv[:, t]
        if rdp is None:  # implementation 2 (lstm.py:325-333)
            xin = x if dp is None else x * dp[0, t if dp.shape[1] > 1 else 0]
            z = xin @ K + h @ U + b
            zi, zf, zc, zo = (z[:, k * n:(k + 1) * n] for k in range(4))
        else:  # implementation 1 (lstm.py:284-323)
            zs = []
            for k in range(4):
                xk = x if dp is None else x * dp[k, 0]
                zs.append(xk @ K[:, k * n:(k + 1) * n] + b[k * n:(k + 1) * n] + (h * rdp[k]) @ U[:, k * n:(k + 1) * n])
            zi, zf, zc, zo = zs
        i, f, o = _sig(zi), _sig(zf), _sig(zo)
        c = f * c + i * act(zc)
        h = o * act(c)
        hs.append(h)
    g = act(np.stack(hs, 1) @ P["W_dense"] + P["b_dense"])
    return g, g @ P["W_dec"] + P["b_dec"]


def ref_nfl_gru(P, v, p0, act, dp=None, rdp=None):
    """NFL ``GRU`` (model.py:427-462 ThreeLayerRNNBase, 524-533) with Keras GRUCell.call
    (gru.py:226-349, reset_after=True): blocks z, r, h; bias[0] on the input product,
    bias[1] on the recurrent product; h' = z h + (1 - z) act(x_h + r * rec_h).
    ``dp`` and ``rdp`` are in Keras's gate order."""
    n = P["W_hh"].shape[0]
    K, U = gru_to_keras(P["W_ih"], n), gru_to_keras(P["W_hh"], n)
    b_in, b_rec = gru_to_keras(P["b"], n), gru_to_keras(P["b_hh"], n)
    h = p0 @ P["W_enc"] + P["b_enc"]
    Mv = v @ P["W_M"] + P["b_M"]
    hs = []
    for t in range(v.shape[1]):
        x = Mv[:, t]
        if rdp is None:  # implementation 2 (gru.py:308-346)
            xin = x if dp is None else x * dp[0, t if dp.shape[1] > 1 else 0]
            mx = xin @ K + b_in
            mi = h @ U + b_rec
            xs, rs = [mx[:, k * n:(k + 1) * n] for k in range(3)], [mi[:, k * n:(k + 1) * n] for k in range(3)]
        else:  # implementation 1 (gru.py:242-306)
            xs = [(x if dp is None else x * dp[k, 0]) @ K[:, k * n:(k + 1) * n] + b_in[k * n:(k + 1) * n]
                  for k in range(3)]
            rs = [(h * rdp[k]) @ U[:, k * n:(k + 1) * n] + b_rec[k * n:(k + 1) * n] for k in range(3)]
        z = _sig(xs[0] + rs[0])
        r = _sig(xs[1] + rs[1])
        hh = act(xs[2] + r * rs[2])
        h = z * h + (1 - z) * hh
        hs.append(h)
    g = act(np.stack(hs, 1) @ P["W_dense"] + P["b_dense"])
    return g, g @ P["W_dec"] + P["b_dec"]


def ref_nfl_ugrnn(P, v, p0, act, dp=None, rdp=None):
    """NFL ``UGRNN`` (model.py:497-501 on ThreeLayerRNNBase 427-462) with its UGRNNCell
    (model.py:73-98): [x, h] @ weight (2Ng, 2Ng) + bias, split [gate, candidate],
    g = sigmoid(gate + 1), h' = g h + (1 - g) act(candidate)."""
    n = P["W_hh"].shape[0]
    weight = np.concatenate([P["W_ih"], P["W_hh"]], axis=0)
    h = p0 @ P["W_enc"] + P["b_enc"]
    Mv = v @ P["W_M"] + P["b_M"]
    hs = []
    for t in range(v.shape[1]):
        m = np.concatenate([Mv[:, t], h], axis=-1) @ weight + P["b"]
        gate = _sig(m[:, :n] + 1.0)
        h = gate * h + (1.0 - gate) * act(m[:, n:])
        hs.append(h)
    g = act(np.stack(hs, 1) @ P["W_dense"] + P["b_dense"])
    return g, g @ P["W_dec"] + P["b_dec"]


def ref_nfl_srnn(P, v, p0, act, dp=None, rdp=None):
    """NFL ``VanillaRNN`` (model.py:511-521: SimpleRNN(use_bias=False) as ``self.RNN`` of
    ThreeLayerRNNBase, model.py:438-442 layers, 449-463 pre_g/g, 465-468 decoder) with
    Keras SimpleRNNCell.call (simple_rnn.py:193-211): s0 = p0 W_enc + b_enc; x = v W_M + b_M;
    h = act((x*dp) K + (h*rdp) U); g = act(h W_dense + b_dense); out = g W_dec + b_dec."""
    assert "b" not in P  # SimpleRNN(use_bias=False): weights are [kernel, recurrent_kernel]
    h = p0 @ P["W_enc"] + P["b_enc"]
    Mv = v @ P["W_M"] + P["b_M"]
    hs = []
    for t in range(v.shape[1]):
        x = Mv[:, t] if dp is None else Mv[:, t] * dp[0, 0]
        hp = h if rdp is None else h * rdp[0]
        h = act(x @ P["W_ih"] + hp @ P["W_hh"])
        hs.append(h)
    g = act(np.stack(hs, 1) @ P["W_dense"] + P["b_dense"])
    return g, g @ P["W_dec"] + P["b_dec"]


REFERENCES = {"rnn": ref_nfl_rnn, "lstm": ref_nfl_lstm, "gru": ref_nfl_gru, "ugrnn": ref_nfl_ugrnn,
              "srnn": ref_nfl_srnn}


def inputs(T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(1, B, T, 2, generator=g, dtype=F64), torch.rand(1, B, NP, generator=g, dtype=F64)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("T", [1, 10])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "ugrnn", "srnn"])
def test_nfl_family_equals_numpy_transcription(cell, activation, T, fused):
    m = nfl_model(cell, activation)
    m.use_fused_recurrence = fused
    v, p0 = inputs(T)
    out, g = m(v, p0)
    ref_g, ref_out = REFERENCES[cell](np_params(m), v[0].numpy(), p0[0].numpy(), _act(activation))
    assert g.shape == (1, B, T, NG) and out.shape == (1, B, T, NOUT)
    np.testing.assert_allclose(g[0].detach().numpy(), ref_g, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out[0].detach().numpy(), ref_out, rtol=0, atol=1e-10)
    assert np.abs(ref_g).max() > 1e-3  # the comparison is not between zeros


def test_nfl_parameters_are_the_originals_layers():
    shapes = {n: tuple(p.shape) for n, p in nfl_model("lstm", "tanh").named_parameters()}
    assert shapes == {"W_enc": (1, NP, NG), "b_enc": (1, 1, NG), "W_enc_c": (1, NP, NG), "b_enc_c": (1, 1, NG),
                      "W_M": (1, 2, NG), "b_M": (1, 1, NG), "W_ih": (1, NG, 4 * NG), "W_hh": (1, NG, 4 * NG),
                      "b": (1, 1, 4 * NG), "W_dense": (1, NG, NG), "b_dense": (1, 1, NG),
                      "W_dec": (1, NG, NOUT), "b_dec": (1, 1, NOUT)}
    assert set(dict(nfl_model("rnn", "relu").named_parameters())) == {"W_enc", "W_ih", "W_hh", "W_dec"}
    assert dict(nfl_model("gru", "relu").named_parameters())["b_hh"].shape == (1, 1, 3 * NG)
    assert dict(nfl_model("ugrnn", "relu").named_parameters())["W_ih"].shape == (1, NG, 2 * NG)
    # VanillaRNN: ThreeLayerRNNBase's biased Dense layers around a SimpleRNN without bias
    assert {n: tuple(p.shape) for n, p in nfl_model("srnn", "relu").named_parameters()} == {
        "W_enc": (1, NP, NG), "b_enc": (1, 1, NG), "W_M": (1, 2, NG), "b_M": (1, 1, NG), "W_ih": (1, NG, NG),
        "W_hh": (1, NG, NG), "W_dense": (1, NG, NG), "b_dense": (1, 1, NG), "W_dec": (1, NG, NOUT),
        "b_dec": (1, 1, NOUT)}


@pytest.mark.parametrize("cell", ["lstm", "gru", "ugrnn", "srnn"])
def test_nfl_fused_and_reference_steps_agree_in_values_and_gradients(cell):
    """The GRU recurrent bias and the UGRNN gate offset go through the fused kernel too."""
    results = []
    v, p0 = inputs(6, seed=3)
    w = torch.randn(1, B, 6, NG, generator=torch.Generator().manual_seed(4), dtype=F64)
    for fused in (True, False):
        m = nfl_model(cell, "tanh")
        m.use_fused_recurrence = fused
        out, g = m(v, p0)
        ((g * w).sum() + out.pow(2).sum()).backward()
        results.append([g.detach()] + [p.grad.clone() for p in m.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------
# Sorscher's model and torch's default initialisation
# --------------------------------------------------------------------------------------
def sorscher_cfg(**kw) -> ModelConfig:
    return ModelConfig(family="sorscher", cell="rnn", activation="relu", hidden_size=NG, init="torch_default", **kw)


@pytest.mark.parametrize("T", [1, 10])
def test_sorscher_family_equals_torch_rnn_and_linear(T):
    """grid-pattern-formation model.py:14-20 (layers), 33-35 (g), 49 (decoder)."""
    m = build_model(sorscher_cfg(), NP, NOUT, [0], dtype=F64)
    encoder = torch.nn.Linear(NP, NG, bias=False).double()
    rnn = torch.nn.RNN(input_size=2, hidden_size=NG, nonlinearity="relu", bias=False).double()
    decoder = torch.nn.Linear(NG, NOUT, bias=False).double()
    with torch.no_grad():
        encoder.weight.copy_(m.W_enc[0].T)
        rnn.weight_ih_l0.copy_(m.W_ih[0].T)
        rnn.weight_hh_l0.copy_(m.W_hh[0].T)
        decoder.weight.copy_(m.W_dec[0].T)
    v, p0 = inputs(T)
    out, g = m(v, p0)
    # Sorscher's RNN is time-major: inputs (T, B, 2), initial state (1, B, Ng)
    ref_g, _ = rnn(v[0].transpose(0, 1), encoder(p0[0])[None])
    ref_g = ref_g.transpose(0, 1)
    torch.testing.assert_close(g[0], ref_g, rtol=0, atol=1e-10)
    torch.testing.assert_close(out[0], decoder(ref_g), rtol=0, atol=1e-10)
    assert float(ref_g.detach().abs().max()) > 1e-3


@pytest.mark.parametrize("family", ["sorscher", "bare"])
def test_torch_default_init_is_uniform_one_over_sqrt_fan(family):
    """torch.nn.RNN: W_ih and W_hh ~ U(+-1/sqrt(Ng)); nn.Linear: U(+-1/sqrt(fan_in))."""
    Ng, Np, E = 64, 32, 8
    cfg = sorscher_cfg() if family == "sorscher" else ModelConfig(init="torch_default")
    m = build_model(cfg.model_copy(update={"hidden_size": Ng}), Np, Np, list(range(E)), dtype=F64)
    for name, fan in (("W_ih", Ng), ("W_hh", Ng), ("W_enc", Np), ("W_dec", Ng)):
        w = getattr(m, name).detach()
        bound = 1 / math.sqrt(fan)
        assert float(w.abs().max()) <= bound, name
        assert float(w.abs().max()) > 0.97 * bound, name
        assert abs(float(w.var()) / (bound ** 2 / 3) - 1) < 0.12, name  # U(-a, a) has variance a^2/3
        assert abs(float(w.mean())) < 0.1 * bound, name


def test_nfl_keras_initialisers():
    """glorot_uniform bounds on every Dense/cell kernel; Keras orthogonal over the WHOLE
    recurrent kernel (orthonormal rows across the 4 gate blocks); biases zero except the
    LSTM forget block (unit_forget_bias); UGRNN's (2Ng, 2Ng) matrix glorot as a whole."""
    Ng = 16
    m = build_model(ModelConfig(family="nfl", cell="lstm", hidden_size=Ng, bias=True, init="orthogonal"),
                    NP, NOUT, [0, 1], dtype=F64)
    for name, (fi, fo) in {"W_enc": (NP, Ng), "W_M": (2, Ng), "W_ih": (Ng, 4 * Ng), "W_dense": (Ng, Ng),
                           "W_dec": (Ng, NOUT)}.items():
        w = getattr(m, name).detach()
        a = math.sqrt(6 / (fi + fo))
        assert float(w.abs().max()) <= a and float(w.abs().max()) > 0.8 * a, name
    for e in range(2):
        W = m.W_hh[e].detach()
        torch.testing.assert_close(W @ W.T, torch.eye(Ng, dtype=F64), rtol=0, atol=1e-12)
        block = W[:, :Ng]
        assert float((block @ block.T - torch.eye(Ng, dtype=F64)).abs().max()) > 0.1  # not per-gate orthogonal
    b = m.b.detach()[:, 0]
    assert torch.equal(b[:, Ng:2 * Ng], torch.ones(2, Ng, dtype=F64))
    assert torch.count_nonzero(b[:, :Ng]) == 0 and torch.count_nonzero(b[:, 2 * Ng:]) == 0
    for name in ("b_enc", "b_enc_c", "b_M", "b_dense", "b_dec"):
        assert torch.count_nonzero(getattr(m, name)) == 0, name
    u = build_model(ModelConfig(family="nfl", cell="ugrnn", hidden_size=Ng, bias=True), NP, NOUT, [0], dtype=F64)
    whole = torch.cat([u.W_ih[0], u.W_hh[0]]).detach()
    a = math.sqrt(6 / (4 * Ng))
    assert float(whole.abs().max()) <= a and float(whole.abs().max()) > 0.9 * a
    n = build_model(ModelConfig(family="nfl", cell="gru", hidden_size=200, bias=True, init="glorot_normal"),
                    NP, NOUT, [0], dtype=F64)
    std = math.sqrt(2 / (200 + 600))
    w = n.W_hh.detach()
    assert float(w.abs().max()) <= 2 * std / 0.87962566103423978  # truncated at two stds of the draw
    assert abs(float(w.std()) / std - 1) < 0.05


# --------------------------------------------------------------------------------------
# the L2 penalty hits what each original penalises
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("family,cell,target", [
    ("bare", "rnn", "W_hh"), ("bare", "ugrnn", "W_hh"), ("sorscher", "rnn", "W_hh"),
    ("nfl", "rnn", "W_hh"), ("nfl", "lstm", "W_hh"), ("nfl", "gru", "W_hh"), ("nfl", "ugrnn", "b"),
    ("nfl", "srnn", "W_hh")])
def test_l2_penalty_target_per_family(family, cell, target):
    if family == "nfl":
        m = nfl_model(cell, "relu")
    elif family == "sorscher":
        m = build_model(sorscher_cfg(), NP, NOUT, [0], dtype=F64)
    else:
        m = build_model(ModelConfig(cell=cell, hidden_size=NG, bias=True), NP, NOUT, [0], dtype=F64)
        with torch.no_grad():
            m.b.normal_()
    m.recurrent_penalty().sum().backward()
    for name, p in m.named_parameters():
        if name == target:
            torch.testing.assert_close(p.grad, 2 * p.detach(), rtol=0, atol=1e-14)
            assert torch.count_nonzero(p.grad) > 0
        else:
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
    torch.testing.assert_close(m.recurrent_penalty(), getattr(m, target).detach().pow(2).sum().reshape(1))


# --------------------------------------------------------------------------------------
# Keras dropout inside the recurrent layer
# --------------------------------------------------------------------------------------
def test_keras_dropout_layouts():
    assert keras_dropout_layout("rnn", "tanh", 0.3) == (1, False, 1)
    assert keras_dropout_layout("srnn", "tanh", 0.0) == (1, False, 1)  # a SimpleRNN too: no cuDNN path
    assert keras_dropout_layout("lstm", "relu", 0.0) == (1, False, 1)  # implementation 2, cell path
    assert keras_dropout_layout("lstm", "tanh", 0.0) == (1, True, 1)  # cuDNN-capable layer: (B, T, D) mask
    assert keras_dropout_layout("lstm", "tanh", 0.2) == (4, False, 4)  # implementation 1
    assert keras_dropout_layout("gru", "relu", 0.2) == (3, False, 3)
    assert keras_dropout_layout("gru", "tanh", 0.0) == (1, True, 1)


@pytest.mark.parametrize("cell,activation,rin,rrec", [
    ("rnn", "relu", 0.3, 0.2), ("lstm", "relu", 0.3, 0.0), ("lstm", "tanh", 0.25, 0.0),
    ("lstm", "relu", 0.3, 0.2), ("gru", "tanh", 0.3, 0.2), ("gru", "relu", 0.0, 0.4),
    ("srnn", "relu", 0.3, 0.2), ("srnn", "tanh", 0.25, 0.0)])
def test_keras_dropout_masks_and_their_effect(cell, activation, rin, rrec):
    m = nfl_model(cell, activation, input_dropout=rin, recurrent_dropout=rrec)
    T, Bm = 10, 4000
    gens = [torch.Generator().manual_seed(5)]
    big = m.sample_dropout_masks(gens, Bm, T)
    k_in, per_step, k_rec = keras_dropout_layout(cell, activation, rrec)
    for mask, rate, shape in ((big.inputs, rin, (1, k_in, T if per_step else 1, Bm, m.W_ih.shape[1])),
                              (big.hidden, rrec, (1, k_rec, Bm, NG))):
        if rate == 0:
            assert mask is None
            continue
        assert mask.shape == shape
        keep = 1 - rate
        values = set(torch.unique(mask).tolist())
        assert values == {0.0, 1 / keep}  # Keras scaling: kept units are divided by the keep rate
        frac = float((mask > 0).double().mean())
        assert abs(frac - keep) < 4 * math.sqrt(keep * rate / mask.numel()) + 1e-3
        assert abs(float(mask.mean()) - 1) < 0.02  # expectation preserved
    if per_step:  # the cuDNN-capable layer redraws the input mask at every step
        assert not torch.equal(big.inputs[0, 0, 0], big.inputs[0, 0, 1])
    # the masked forward pass equals the transcription with the same masks, constant in time
    # for Tm = 1 (the mask has no time axis to vary along)
    small = m.sample_dropout_masks([torch.Generator().manual_seed(6)], B, T)
    v, p0 = inputs(T, seed=2)
    out, g = m(v, p0, masks=small)
    dp = None if small.inputs is None else small.inputs[0].numpy()
    rdp = None if small.hidden is None else small.hidden[0].numpy()
    if cell == "gru":  # per-gate masks in Keras's gate order z, r, h
        dp = dp[[1, 0, 2]] if dp is not None and dp.shape[0] == 3 else dp
        rdp = rdp[[1, 0, 2]] if rdp is not None else None
    ref_g, ref_out = REFERENCES[cell](np_params(m), v[0].numpy(), p0[0].numpy(), _act(activation), dp, rdp)
    np.testing.assert_allclose(g[0].detach().numpy(), ref_g, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out[0].detach().numpy(), ref_out, rtol=0, atol=1e-10)
    plain, _ = m(v, p0)
    assert float((plain - out).detach().abs().max()) > 1e-6  # the masks did something


def nfl_run_cfg(seed: int, cell: str = "lstm", **model) -> RunConfig:
    return RunConfig().with_overrides({
        "seed": seed, "model.family": "nfl", "model.cell": cell, "model.bias": cell != "rnn",
        "model.activation": "tanh", "model.hidden_size": 8, **{f"model.{k}": v for k, v in model.items()},
        "target.n_cells": 10, "trajectory.batch_size": 5, "trajectory.sequence_length": 4,
        "training.dtype": "float64", "training.learning_rate": 3e-3, "training.weight_decay": 1e-3,
        "evaluation.n_trajectories": 4, "evaluation.sequence_length": 4})


@pytest.mark.parametrize("cell,rin,rrec", [("lstm", 0.3, 0.2), ("gru", 0.3, 0.0), ("rnn", 0.2, 0.3),
                                          ("srnn", 0.2, 0.3), ("srnn", 0.0, 0.0)])
def test_ensemble_with_keras_dropout_equals_networks_alone(cell, rin, rrec):
    cfgs = [nfl_run_cfg(s, cell, input_dropout=rin, recurrent_dropout=rrec) for s in (1, 2, 3)]
    together, alone = Ensemble(cfgs), [Ensemble([c]) for c in cfgs]
    for _ in range(4):
        together.train_step()
        for a in alone:
            a.train_step()
    for e, a in enumerate(alone):
        for name, p in together.model.state_dict().items():
            torch.testing.assert_close(p[e], a.model.state_dict()[name][0], rtol=1e-9, atol=1e-12, msg=name)


def test_nfl_checkpoint_resume_is_exact():
    cfg = nfl_run_cfg(4, "gru", input_dropout=0.2, recurrent_dropout=0.1)
    full = Ensemble([cfg])
    for _ in range(4):
        full.train_step()
    first = Ensemble([cfg])
    for _ in range(2):
        first.train_step()
    state = first.network_state(0)
    assert {"b_hh", "W_M", "W_dense", "b_dense"} <= set(state["model"])
    resumed = Ensemble([cfg])
    resumed.load_network_states([state])
    for _ in range(2):
        resumed.train_step()
    for name, p in full.model.state_dict().items():
        assert torch.equal(p, resumed.model.state_dict()[name]), name


# --------------------------------------------------------------------------------------
# combinations no original expresses
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("over,fields", [
    ({"model.input_dropout": 0.2}, "model.input_dropout"),
    ({"model.family": "bare", "model.recurrent_dropout": 0.1}, "model.recurrent_dropout"),
    ({"model.family": "sorscher", "model.init": "torch_default", "model.cell": "lstm"}, "model.cell"),
    ({"model.family": "sorscher", "model.init": "torch_default", "model.bias": True}, "model.bias"),
    ({"model.family": "sorscher"}, "model.init"),
    ({"model.family": "nfl", "model.cell": "lstm", "model.bias": False}, "model.bias"),
    ({"model.family": "nfl", "model.bias": True}, "model.bias"),
    ({"model.family": "nfl", "model.dropout": 0.5}, "model.dropout"),
    ({"model.family": "nfl", "model.bottleneck": 4}, "model.bottleneck"),
    ({"model.family": "nfl", "model.init": "torch_default"}, "model.init"),
    ({"model.family": "nfl", "model.cell": "ugrnn", "model.bias": True, "model.init": "orthogonal"}, "model.init"),
    ({"model.family": "nfl", "model.cell": "ugrnn", "model.bias": True, "model.input_dropout": 0.1},
     "model.input_dropout"),
    ({"model.cell": "srnn"}, "model.cell"),
    ({"model.family": "sorscher", "model.init": "torch_default", "model.cell": "srnn"}, "model.cell"),
    ({"model.family": "nfl", "model.cell": "srnn", "model.bias": False}, "model.bias"),
])
def test_inexpressible_combinations_fail_with_one_line(over, fields):
    with pytest.raises(ConfigError) as err:
        RunConfig().with_overrides(over)
    msg = str(err.value)
    assert "\n" not in msg and fields in msg and "model.family" in msg


def test_presets_and_defaults_validate():
    assert RunConfig().model.family == "bare"
    RunConfig().with_overrides({"model.family": "sorscher", "model.init": "torch_default"})
    RunConfig().with_overrides({"model.family": "nfl", "model.cell": "gru", "model.bias": True,
                                "model.input_dropout": 0.1, "model.recurrent_dropout": 0.1})
    with pytest.raises(ConfigError):
        PathIntegrator("lstm", "tanh", 4, 3, 3, 1, bias=False, family="nfl")
    assert CELLS["gru"].gates == 3 and RecurrentMasks(None, None).inputs is None


def test_srnn_is_the_rnn_step_in_nfls_three_layer_layout(monkeypatch):
    """One definition: srnn steps with the rnn cell and runs the rnn fused kernel; it exists only in family nfl."""
    from gridsweep import fastpath

    assert CELLS["srnn"].step is CELLS["rnn"].step and CELLS["srnn"].kernel == "rnn"
    assert ModelConfig(family="nfl", cell="srnn").uses_bias is True  # NFL's value left to the family
    for family in ("bare", "sorscher"):
        with pytest.raises(ConfigError, match="model.cell='srnn'"):
            PathIntegrator("srnn", "relu", 4, 3, 3, 1, family=family)
    kernels = []
    real = fastpath.fused_recurrence
    monkeypatch.setattr(fastpath, "fused_recurrence", lambda cell, *a, **k: kernels.append(cell) or real(cell, *a, **k))
    nfl_model("srnn", "tanh")(*inputs(3))
    assert kernels == ["rnn"]


def test_srnn_gradients_in_ensemble_equal_gradients_alone():
    """Per-network seeds, learning rates, weight decays and target widths (test_ensemble_equivalence.py pattern)."""
    over = [{"training.learning_rate": 1e-3, "training.weight_decay": 1e-4, "target.sigma": 0.12},
            {"training.learning_rate": 3e-3, "training.weight_decay": 1e-2, "target.sigma": 0.25}]
    cfgs = [nfl_run_cfg(s, "srnn").with_overrides(o) for s, o in zip((5, 6), over)]
    together, alone = Ensemble(cfgs), [Ensemble([c]) for c in cfgs]

    def total(ens):
        loss, _, _ = ens.losses(ens.sample(), train=True)
        return loss + ens.weight_decay * ens.model.recurrent_penalty()

    total(together).sum().backward()
    for e, a in enumerate(alone):
        total(a).sum().backward()
        for (name, p), q in zip(together.model.named_parameters(), a.model.parameters()):
            assert p.grad is not None and torch.count_nonzero(p.grad[e]) > 0, name
            torch.testing.assert_close(p.grad[e], q.grad[0], rtol=1e-9, atol=1e-12, msg=f"srnn {name} net {e}")


@pytest.mark.parametrize("family,cell", [("bare", "lstm"), ("bare", "gru"), ("nfl", "rnn"), ("nfl", "lstm"),
                                         ("nfl", "gru"), ("nfl", "ugrnn"), ("nfl", "srnn"), ("sorscher", "rnn")])
def test_n_parameters_counts_what_the_model_allocates(family, cell):
    from gridsweep.models import n_parameters

    kw = {"init": "torch_default"} if family == "sorscher" else {}
    if family == "bare":
        kw = {"bias": True, "bottleneck": 3}
    cfg = ModelConfig(family=family, cell=cell, hidden_size=NG, **kw)
    m = build_model(cfg, NP, NOUT, [0])
    assert n_parameters(cfg, NP, NOUT) == sum(p.numel() for p in m.parameters())
    assert cfg.uses_bias == (m.b_dec is not None)
    assert (m.b is not None) == (cfg.uses_bias and cell != "srnn")  # VanillaRNN's SimpleRNN has no bias


def test_bias_left_to_the_family():
    assert ModelConfig(family="nfl", cell="gru").uses_bias is True
    assert ModelConfig(family="nfl", cell="rnn").uses_bias is False
    assert ModelConfig().uses_bias is False and ModelConfig(bias=True).uses_bias is True
    # a cell sweep on an nfl base config needs no bias override
    base = RunConfig().with_overrides({"model.family": "nfl"})
    assert base.with_overrides({"model.cell": "lstm"}).model.uses_bias


@pytest.mark.parametrize("error", [RuntimeError, AttributeError])
def test_private_onednn_operator_failing_falls_back_to_torch_bmm(monkeypatch, error):
    """A missing (AttributeError) or failing (RuntimeError) torch.ops.mkldnn operator
    leaves the public torch.bmm product, with the same numbers."""
    from gridsweep import fastpath

    def broken(x, w):
        raise error("no oneDNN here")

    m = build_model(ModelConfig(cell="gru", activation="tanh", hidden_size=12, bias=True), 4, 4, [0, 1])
    v, p0 = torch.randn(2, 3, 5, 2), torch.rand(2, 3, 4)
    expected, _ = m(v, p0)
    monkeypatch.setattr(fastpath, "ONEDNN_MIN_MACS", 0)
    monkeypatch.setattr(fastpath, "ONEDNN_MATMUL", True)
    monkeypatch.setattr(fastpath, "_onednn_linear", broken)
    monkeypatch.setattr(fastpath, "_onednn_works", True)  # as if the probe had succeeded, then the op fails
    out, _ = m(v, p0)
    out.sum().backward()
    assert fastpath._onednn_works is False
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    monkeypatch.setattr(fastpath, "_onednn_works", None)  # a fresh probe finds it missing
    assert fastpath.onednn_available() is False
    torch.testing.assert_close(fastpath.bmm(v[:, 0], m.W_ih), torch.bmm(v[:, 0], m.W_ih))
