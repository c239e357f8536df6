"""Sub-commands: results on stdout, progress through module loggers that ``-q`` silences."""

from __future__ import annotations

from gridsweep.cli import main

SPEC = """\
name: tinyspec
base:
  box: {width: 1.0, height: 1.0}
  trajectory: {batch_size: 4, sequence_length: 5}
  target: {n_cells: 16}
  model: {hidden_size: 16}
  training: {n_steps: 2}
grid:
  training.learning_rate: [1.0e-3, 1.0e-2]
"""


def test_sweep_run_progress_is_logged_and_quiet_silences_it(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    argv = ["sweep", "run", str(spec), "--out", str(tmp_path / "s"), "--max-trials", "0", "--no-progress"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "sweep tinyspec: 2 trials from" in err and "tinyspec: 2 trials" not in out
    assert out.strip().splitlines()[-1].endswith("pending 2")  # the result line stays on stdout
    assert main(["-q", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.strip().endswith("pending 2")


def test_bad_run_options_fail_before_anything_is_logged(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    for extra, needle in ((["--executor", "potato"], "--executor"), (["--device", "potato"], "--device"),
                          (["--max-trials", "-1"], "--max-trials"), (["--ensemble-size", "0"], "--ensemble-size")):
        assert main(["sweep", "run", str(spec), "--out", str(tmp_path / "s"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not (tmp_path / "s").exists()


def test_theory_files_written_are_logged(tmp_path, capsys):
    from gridsweep.config import RunConfig

    cfg = tmp_path / "c.yaml"
    RunConfig().with_overrides({"target.n_cells": 16}).to_yaml(cfg)
    argv = ["theory", "predict", str(cfg), "--resolution", "0.05", "--out", str(tmp_path / "t"), "--no-simulate"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "predicted spacing" in out and "wrote " not in out
    assert f"wrote {tmp_path / 't' / 'prediction.json'}" in err
