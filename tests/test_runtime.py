"""Runtime tuning (gridsweep.runtime) and the single end-of-training evaluation / summary writer."""

from __future__ import annotations

import json

import pytest
import torch

from gridsweep import runtime
from gridsweep.files import verify_checksum
from gridsweep.runtime import StepMetrics, compile_requested, loss_blocks, trajectory_threads

CPU, GPU = torch.device("cpu"), torch.device("cuda")
MB = 1 << 20


# --------------------------------------------------------------------------------------
# the knobs: known answers
# --------------------------------------------------------------------------------------
def test_loss_blocks_known_answers():
    assert loss_blocks(5, 3 * MB, CPU, compiled=False) == [2, 2, 1]  # 8 MB // 3 MB = 2 networks a block
    assert loss_blocks(3, 1, CPU, compiled=False, block_bytes=1) == [1, 1, 1]
    assert loss_blocks(4, 100 * MB, CPU, compiled=False) == [1, 1, 1, 1]  # never fewer than one network
    assert loss_blocks(4, 1 * MB, CPU, compiled=False) == [4]
    assert loss_blocks(5, 3 * MB, GPU, compiled=False) == [5]  # GPUs are not blocked
    assert loss_blocks(5, 3 * MB, CPU, compiled=True) == [5]  # a compiled loss is one fused kernel
    assert loss_blocks(1, 100 * MB, CPU, compiled=False) == [1]


def test_trajectory_threads_serial_only_for_small_cpu_batches():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with trajectory_threads(CPU, 100):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with trajectory_threads(CPU, runtime.SERIAL_AGENTS):
            assert torch.get_num_threads() == 2
        with trajectory_threads(GPU, 100):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_compile_requested_argument_wins_over_environment(monkeypatch):
    monkeypatch.delenv("GRIDSWEEP_COMPILE", raising=False)
    assert compile_requested(None) is False
    monkeypatch.setenv("GRIDSWEEP_COMPILE", "on")
    assert compile_requested(None) is True and compile_requested(False) is False
    monkeypatch.setenv("GRIDSWEEP_COMPILE", "0")
    assert compile_requested(None) is False and compile_requested(True) is True


def test_malloc_tuning_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(runtime, "_MALLOC_TUNED", False)
    monkeypatch.setenv("GRIDSWEEP_MALLOC_TUNE", "0")
    runtime.tune_cpu_malloc()
    assert runtime._MALLOC_TUNED is False
    monkeypatch.setenv("GRIDSWEEP_MALLOC_TUNE", "1")
    runtime.tune_cpu_malloc()
    assert runtime._MALLOC_TUNED is True


def test_step_metrics_decode_once_and_only_when_read():
    calls = []

    def decode():
        calls.append(1)
        return torch.tensor([3.0, 4.0])

    m = StepMetrics(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.5]), decode)
    assert m["loss"].tolist() == [1.0, 2.0] and m.penalty.tolist() == [0.5, 0.5] and not calls
    assert set(m) == {"loss", "penalty", "decoding_error_cm"} and len(m) == 3
    assert m.decoding_error_cm.tolist() == [3.0, 4.0] and m["decoding_error_cm"].tolist() == [3.0, 4.0]
    assert calls == [1]
    with pytest.raises(KeyError):
        m["accuracy"]


# --------------------------------------------------------------------------------------
# one end-of-training evaluation, one summary writer
# --------------------------------------------------------------------------------------
def count_evaluations(monkeypatch) -> list[int]:
    from gridsweep.training import Ensemble

    steps: list[int] = []
    original = Ensemble.evaluate

    def counted(self, *a, **kw):
        steps.append(self.step)
        return original(self, *a, **kw)

    monkeypatch.setattr(Ensemble, "evaluate", counted)
    return steps


@pytest.fixture
def short_cfg(tiny_cfg):
    return tiny_cfg.with_overrides({"training.n_steps": 4, "training.eval_every": 2, "training.checkpoint_every": 2,
                                    "training.log_every": 2})


def test_final_weights_are_evaluated_once(short_cfg, tmp_path, monkeypatch):
    from gridsweep.evaluation import score_run
    from gridsweep.training import load_run, train

    steps = count_evaluations(monkeypatch)
    ens, res = train(short_cfg, tmp_path / "run", progress=False)
    assert steps == [2, 4]  # eval_every 2, n_steps 4: the last evaluation is the final one
    m = score_run(tmp_path / "run", ens, n_samples=500, bins=8, figures=False)
    assert steps == [2, 4]  # score_run reuses the recorded error
    assert m["decoding_error_cm"] == res.metrics["decoding_error_cm"]
    # the recorded number is what evaluating the saved weights gives
    fresh = float(load_run(tmp_path / "run").evaluate()[0])
    assert fresh == res.metrics["decoding_error_cm"]


def test_a_resumed_finished_run_is_evaluated_again(short_cfg, tmp_path, monkeypatch):
    from gridsweep.training import train

    _, first = train(short_cfg, tmp_path / "run", progress=False)
    steps = count_evaluations(monkeypatch)
    _, again = train(short_cfg, tmp_path / "run", progress=False)  # resumes at step 4: no step runs
    assert steps == [4] and again.metrics["decoding_error_cm"] == first.metrics["decoding_error_cm"]


def test_score_run_measures_when_the_summary_is_of_another_step(short_cfg, tmp_path, monkeypatch):
    from gridsweep.evaluation import held_out_error
    from gridsweep.training import train, write_summary

    ens, res = train(short_cfg, tmp_path / "run", progress=False)
    write_summary(tmp_path / "run", {"steps": 3, "decoding_error_cm": 123.0})
    steps = count_evaluations(monkeypatch)
    assert held_out_error(tmp_path / "run", ens) == res.metrics["decoding_error_cm"]
    assert steps == [4]


def test_write_summary_starts_or_merges_with_a_checksum(tmp_path):
    from gridsweep.training import write_summary

    write_summary(tmp_path, {"status": "done", "decoding_error_cm": 5.0}, start=True)
    write_summary(tmp_path, {"max_score60_deepmind_minmax": 1.2, "decoding_error_cm": 5.5})
    f = tmp_path / "summary.json"
    assert json.loads(f.read_text()) == {"status": "done", "decoding_error_cm": 5.5, "max_score60_deepmind_minmax": 1.2}
    verify_checksum(f, "require")
    write_summary(tmp_path, {"status": "done", "decoding_error_cm": 4.0}, start=True)
    assert json.loads(f.read_text()) == {"status": "done", "decoding_error_cm": 4.0}
    verify_checksum(f, "require")
