"""Bad inputs at the command line: one line on stderr, the right exit status, nothing changed.

Every case runs ``gridsweep.cli.main(argv)`` in process and checks

* the exit status (2 bad input, 1 runtime failure; see ``gridsweep.cli``),
* exactly one non-empty line on stderr, starting ``error: `` and naming the field or
  path (``needles``, case-insensitive),
* no Python traceback anywhere in the output,
* that every file that existed before (the test's tmp tree and the shared trained run
  and sweep) is byte-for-byte unchanged, and that nothing was written outside the tmp
  tree (``--set name=../../elsewhere``).

Placeholders in the argv templates: ``{tmp}`` this test's directory (also the working
directory), ``{cfg}`` a valid tiny config, ``{run}`` / ``{sweep}`` the shared trained run
and sweep (session fixtures), ``{spec}`` a valid tiny spec, ``{file}`` a plain file,
``{ro}`` a directory this user cannot write (``/sys/...`` when running as root, where
permission bits do not bind), ``{c:NAME}`` the config or spec file NAME written from
:data:`FILES`, ``{copy}`` a private copy of the trained run (for checkpoint damage).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

TINY = """\
name: tiny
box: {width: 1.0, height: 1.0}
trajectory: {batch_size: 4, sequence_length: 5}
target: {n_cells: 16}
model: {hidden_size: 16}
training: {n_steps: 2, eval_every: 1, checkpoint_every: 1, log_every: 1}
evaluation: {n_trajectories: 4, sequence_length: 5, ratemap_samples: 500, bins: 8}
"""

SPEC = """\
name: tinyspec
base:
  box: {width: 1.0, height: 1.0}
  trajectory: {batch_size: 4, sequence_length: 5}
  target: {n_cells: 16}
  model: {hidden_size: 16}
  training: {n_steps: 2, eval_every: 1, checkpoint_every: 1, log_every: 1}
  evaluation: {n_trajectories: 4, sequence_length: 5, ratemap_samples: 500, bins: 8}
grid:
  training.learning_rate: [1.0e-3]
"""

#: files written into every test's directory (``{c:NAME}``)
FILES: dict[str, str | bytes] = {
    "bad.yaml": "model: [unclosed\n",
    "python.yaml": "model: !!python/object/apply:os.system ['echo pwned']\n",
    "unknown.yaml": "modle: {hidden_size: 16}\n",
    "wrongtype.yaml": "model: {hidden_size: abc}\n",
    "negative.yaml": "target: {sigma: -1}\n",
    "badkind.yaml": "target: {kind: hexagons}\n",
    "list.yaml": "- 1\n- 2\n",
    "string.yaml": "just a sentence\n",
    "empty.yaml": "",
    "inf.yaml": "target: {sigma: .inf}\n",
    "nan.yaml": "training: {learning_rate: .nan}\n",
    "binary.yaml": b"\x00\xff\xfe\x81garbage\x00",
    "tab.yaml": "model:\n\thidden_size: 16\n",
    "slashname.yaml": TINY.replace("name: tiny", "name: ../../elsewhere"),
    "spec_bad.yaml": "name: s\nbase: {model: {hidden_size: 16}}\ngrid: [unclosed\n",
    "spec_python.yaml": "name: s\nbase: !!python/object/apply:os.system ['echo pwned']\n",
    "spec_unknown.yaml": SPEC + "bogus: 1\n",
    "spec_badkey.yaml": SPEC.replace("training.learning_rate", "training.learnin_rate"),
    "spec_badvalue.yaml": SPEC.replace("[1.0e-3]", "[-1.0]"),
    "spec_slash.yaml": SPEC.replace("name: tinyspec", "name: ../../elsewhere"),
    "spec_list.yaml": "- 1\n- 2\n",
    "spec_emptygrid.yaml": SPEC.replace("[1.0e-3]", "[]"),
    "spec_other.yaml": SPEC.replace("[1.0e-3]", "[2.0e-3]"),
    "spec_badbase.yaml": SPEC.replace("model: {hidden_size: 16}", "model: {hidden_size: abc}"),
    "preset_unknown.yaml": "name: p\nscale: one line\nbase: demo_small\nbogus: 1\n",
    "preset_badbase.yaml": "name: p\nscale: one line\nbase: no_such_config\n",
    "notes.txt": "a plain file\n",
    "data.pkl": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00N.",
}

# (id, argv template, exit status, needles in the error line[, xfail reason])
# fmt: off
CASES: list[tuple] = [
    # --- global ------------------------------------------------------------------------------
    ("nosuch-command", "nosuch", 2, ["nosuch"]),
    ("global-bad-option", "--bogus", 2, ["--bogus"]),
    ("train-missing-arg", "train", 2, ["config"]),
    ("train-unknown-option", "train {cfg} --bogus", 2, ["--bogus"]),
    ("score-missing-arg", "score", 2, ["run_dir"]),
    ("config-show-missing-arg", "config show", 2, ["config"]),
    ("config-presets-extra-arg", "config presets extra", 2, ["extra"]),
    ("config-nosuch-sub", "config nosuch", 2, ["nosuch"]),
    ("sweep-nosuch-sub", "sweep nosuch", 2, ["nosuch"]),
    ("theory-nosuch-sub", "theory nosuch", 2, ["nosuch"]),
    ("neural-nosuch-sub", "neural nosuch", 2, ["nosuch"]),
    # --- config files (config show: validation only, nothing trains) -----------------------
    ("show-missing-file", "config show {tmp}/missing.yaml", 2, ["missing.yaml", "does not exist"]),
    ("show-missing-preset", "config show no_such_preset", 2, ["no_such_preset", "demo_small"]),
    ("show-directory", "config show {tmp}", 2, ["is a directory"]),
    ("show-bad-yaml", "config show {c:bad.yaml}", 2, ["bad.yaml", "yaml", "line"]),
    ("show-python-tag", "config show {c:python.yaml}", 2, ["python.yaml", "python/object", "not allowed"]),
    ("show-unknown-key", "config show {c:unknown.yaml}", 2, ["modle", "unknown key"]),
    ("show-wrong-type", "config show {c:wrongtype.yaml}", 2, ["model.hidden_size", "abc"]),
    ("show-negative", "config show {c:negative.yaml}", 2, ["target.sigma", "greater than 0"]),
    ("show-bad-kind", "config show {c:badkind.yaml}", 2, ["target.kind", "hexagons"]),
    ("show-list-top", "config show {c:list.yaml}", 2, ["list.yaml", "mapping"]),
    ("show-string-top", "config show {c:string.yaml}", 2, ["string.yaml", "mapping"]),
    ("show-binary", "config show {c:binary.yaml}", 2, ["binary.yaml"]),
    ("show-tab", "config show {c:tab.yaml}", 2, ["tab.yaml", "line"]),
    ("show-empty", "config show {c:empty.yaml}", 2, ["empty.yaml", "empty"]),
    ("show-inf", "config show {c:inf.yaml}", 2, ["target.sigma", "inf"]),
    ("show-nan", "config show {c:nan.yaml}", 2, ["training.learning_rate"]),
    ("show-set-novalue", "config show {cfg} --set novalue", 2, ["novalue", "key=value"]),
    ("show-set-unknown", "config show {cfg} --set model.hiden=3", 2, ["model.hiden", "unknown key"]),
    ("show-set-not-section", "config show {cfg} --set model.hidden_size.x=1", 2, ["model.hidden_size", "not a section"]),
    ("show-set-section-value", "config show {cfg} --set model=3", 2, ["model"]),
    ("show-set-bad-literal", "config show {cfg} --set model.cell=potato", 2, ["model.cell", "potato"]),
    ("show-set-zero-steps", "config show {cfg} --set training.n_steps=0", 2, ["training.n_steps"]),
    ("show-set-milestones", "config show {cfg} --set training.lr_milestones=[5,3]", 2, ["lr_milestones"]),
    ("show-set-dropout", "config show {cfg} --set model.dropout=1.0", 2, ["model.dropout"]),
    ("show-set-seed", "config show {cfg} --set seed=-1", 2, ["seed"]),
    ("show-set-bins", "config show {cfg} --set evaluation.bins=1", 2, ["evaluation.bins"]),
    ("show-set-boundary", "config show {cfg} --set box.boundary=round", 2, ["box.boundary", "round"]),
    ("show-set-cartesian", "config show {cfg} --set target.kind=cartesian", 2, ["n_cells"]),
    ("show-set-surround-below-one", "config show {cfg} --set target.surround_width_ratio=0.5", 2,
     ["target.surround_width_ratio"]),
    # --- train: every refusal happens before any training -----------------------------------
    ("train-missing-file", "train {tmp}/missing.yaml", 2, ["missing.yaml", "does not exist"]),
    ("train-missing-preset", "train no_such_preset", 2, ["no_such_preset"]),
    ("train-directory", "train {tmp}", 2, ["is a directory"]),
    ("train-bad-yaml", "train {c:bad.yaml}", 2, ["bad.yaml", "yaml"]),
    ("train-python-tag", "train {c:python.yaml}", 2, ["python/object", "not allowed"]),
    ("train-unknown-key", "train {c:unknown.yaml}", 2, ["modle", "unknown key"]),
    ("train-wrong-type", "train {c:wrongtype.yaml}", 2, ["model.hidden_size"]),
    ("train-list-top", "train {c:list.yaml}", 2, ["mapping"]),
    ("train-binary", "train {c:binary.yaml}", 2, ["binary.yaml"]),
    ("train-name-escape", "train {cfg} --set name=../../elsewhere", 2, ["name", "../../elsewhere", "--out"]),
    ("train-name-slash", "train {cfg} --set name=a/b", 2, ["name", "a/b"]),
    ("train-name-dotdot", "train {cfg} --set name=..", 2, ["name", ".."]),
    ("train-name-in-file", "train {c:slashname.yaml}", 2, ["name", "elsewhere"]),
    ("train-name-backslash", "train {cfg} --set name=a\\\\b", 2, ["name"]),
    ("train-set-novalue", "train {cfg} --set novalue", 2, ["key=value"]),
    ("train-set-unknown", "train {cfg} --set model.hiden=3", 2, ["model.hiden", "unknown key"]),
    ("train-set-negative", "train {cfg} --set target.sigma=-1", 2, ["target.sigma"]),
    ("train-set-cell", "train {cfg} --set model.cell=potato", 2, ["model.cell"]),
    ("train-set-optimizer", "train {cfg} --set training.optimizer=lbfgs", 2, ["training.optimizer", "lbfgs"]),
    ("train-set-dt", "train {cfg} --set trajectory.dt=abc", 2, ["trajectory.dt"]),
    ("train-set-ncells", "train {cfg} --set target.n_cells=0", 2, ["target.n_cells"]),
    ("train-set-periodic-ou", "train {cfg} --set box.boundary=periodic --set trajectory.motion=ou", 2, ["ou"]),
    ("train-device-potato", "train {cfg} --device potato", 2, ["--device", "potato", "cpu"]),
    ("train-device-empty", "train {cfg} --device ''", 2, ["--device"]),
    ("train-device-cuda-x", "train {cfg} --device cuda:x", 2, ["--device", "cuda:x"]),
    ("train-device-gpu", "train {cfg} --device gpu", 2, ["--device", "gpu"]),
    ("train-out-file", "train {cfg} --out {file}", 2, ["--out", "notes.txt", "is a file"]),
    ("train-out-below-file", "train {cfg} --out {file}/run", 2, ["notes.txt", "is a file"]),
    ("train-out-readonly", "train {cfg} --out {ro}/run", 2, ["{ro}"]),
    ("train-out-other-run", "train {cfg} --set seed=7 --out {run}", 2, ["different config"]),
    ("train-score-flag-value", "train {cfg} --score=maybe", 2, ["--score"]),
    # --- score -------------------------------------------------------------------------------
    ("score-missing-dir", "score {tmp}/nope", 2, ["nope"]),
    ("score-file", "score {file}", 2, ["notes.txt", "is a file"]),
    ("score-not-run", "score {tmp}", 2, ["not a run directory", "config.yaml"]),
    ("score-samples-zero", "score {run} --samples 0", 2, ["--samples"]),
    ("score-samples-text", "score {run} --samples many", 2, ["--samples"]),
    ("score-bins-one", "score {run} --bins 1", 2, ["--bins"]),
    ("score-no-checkpoint", "score {copy} ", 2, ["checkpoint"], None, "rm:checkpoints/last.pt"),
    ("score-truncated-checkpoint", "score {copy}", 2, ["last.pt"], None, "truncate:checkpoints/last.pt"),
    ("score-corrupt-header", "score {copy}", 2, ["last.pt"], None, "header:checkpoints/last.pt"),
    ("score-empty-checkpoint", "score {copy}", 2, ["last.pt"], None, "empty:checkpoints/last.pt"),
    ("score-pickle-checkpoint", "score {copy}", 2, ["last.pt"], None, "pickle:checkpoints/last.pt"),
    ("score-bad-config", "score {copy}", 2, ["config.yaml", "modle"], None, "badconfig:config.yaml"),
    ("score-python-config", "score {copy}", 2, ["config.yaml", "not allowed"], None, "pyconfig:config.yaml"),
    ("score-config-is-dir", "score {copy}", 2, ["config.yaml"], None, "dirconfig:config.yaml"),
    # --- sweep run ---------------------------------------------------------------------------
    ("sweep-run-missing-spec", "sweep run {tmp}/missing.yaml", 2, ["missing.yaml"]),
    ("sweep-run-spec-dir", "sweep run {tmp}", 2, ["{tmp}"]),
    ("sweep-run-bad-yaml", "sweep run {c:spec_bad.yaml}", 2, ["spec_bad.yaml", "yaml"]),
    ("sweep-run-python-tag", "sweep run {c:spec_python.yaml}", 2, ["spec_python.yaml"]),
    ("sweep-run-unknown-key", "sweep run {c:spec_unknown.yaml}", 2, ["spec_unknown.yaml", "bogus"]),
    ("sweep-run-bad-param", "sweep run {c:spec_badkey.yaml}", 2, ["learnin_rate"]),
    ("sweep-run-bad-value", "sweep run {c:spec_badvalue.yaml}", 2, ["learning_rate"]),
    ("sweep-run-bad-base", "sweep run {c:spec_badbase.yaml}", 2, ["hidden_size"]),
    ("sweep-run-name-escape", "sweep run {c:spec_slash.yaml}", 2, ["name"]),
    ("sweep-run-list", "sweep run {c:spec_list.yaml}", 2, ["spec_list.yaml", "mapping"]),
    ("sweep-run-empty-grid", "sweep run {c:spec_emptygrid.yaml}", 2, ["spec_emptygrid.yaml"]),
    ("sweep-run-binary", "sweep run {c:binary.yaml}", 2, ["binary.yaml"]),
    ("sweep-run-out-file", "sweep run {spec} --out {file}", 2, ["--out", "is a file"]),
    ("sweep-run-out-below-file", "sweep run {spec} --out {file}/s", 2, ["notes.txt", "is a file"]),
    ("sweep-run-out-run-dir", "sweep run {spec} --out {run}", 2, ["--out", "run directory"]),
    ("sweep-run-out-readonly", "sweep run {spec} --out {ro}/s", 2, ["{ro}"]),
    ("sweep-run-different-spec", "sweep run {c:spec_other.yaml} --out {sweep}", 2, ["different spec", "--merge"]),
    ("sweep-run-device", "sweep run {spec} --out {tmp}/s --device potato", 2, ["--device", "potato"]),
    ("sweep-run-executor", "sweep run {spec} --out {tmp}/s --executor potato", 2, ["potato"]),
    ("sweep-run-max-trials", "sweep run {spec} --out {tmp}/s --max-trials -1", 2, ["--max-trials"]),
    ("sweep-run-ensemble-size", "sweep run {spec} --out {tmp}/s --ensemble-size 0", 2, ["--ensemble-size"]),
    ("sweep-run-gpus-zero", "sweep run {spec} --out {tmp}/s --gpus-per-trial 0", 2, ["--gpus-per-trial"]),
    ("sweep-run-gpus-text", "sweep run {spec} --out {tmp}/s --gpus-per-trial lots", 2, ["--gpus-per-trial"]),
    ("sweep-run-workers-text", "sweep run {spec} --out {tmp}/s --workers many", 2, ["--workers"]),
    ("sweep-run-missing-arg", "sweep run", 2, ["spec"]),
    # --- sweep status / export / rescore / expand -------------------------------------------
    ("sweep-status-missing", "sweep status {tmp}/nope", 2, ["nope"]),
    ("sweep-status-file", "sweep status {file}", 2, ["notes.txt"]),
    ("sweep-status-not-sweep", "sweep status {tmp}", 2, ["{tmp}"]),
    ("sweep-status-run-dir", "sweep status {run}", 2, ["{run}"]),
    ("sweep-status-top-text", "sweep status {sweep} --top many", 2, ["--top"]),
    ("sweep-export-missing", "sweep export {tmp}/nope --to {tmp}/r.csv", 2, ["nope"]),
    ("sweep-export-not-sweep", "sweep export {tmp} --to {tmp}/r.csv", 2, ["{tmp}"]),
    ("sweep-export-readonly", "sweep export {sweep} --to {ro}/r.csv", 2, ["{ro}"]),
    ("sweep-export-below-file", "sweep export {sweep} --to {file}/r.csv", 2, ["notes.txt"]),
    ("sweep-export-suffix", "sweep export {sweep} --to {tmp}/r.txt", 2, ["r.txt"]),
    ("sweep-export-to-dir", "sweep export {sweep} --to {tmp}", 2, ["{tmp}"]),
    ("sweep-export-missing-to", "sweep export {sweep}", 2, ["--to"]),
    ("sweep-rescore-missing", "sweep rescore {tmp}/nope", 2, ["nope"]),
    ("sweep-rescore-not-sweep", "sweep rescore {tmp}", 2, ["{tmp}"]),
    ("sweep-rescore-unknown-trial", "sweep rescore {sweep} --trial zzzz --no-progress", 2, ["zzzz"]),
    ("sweep-rescore-bad-analysis", "sweep rescore {sweep} --analysis potato --no-progress", 2, ["potato"]),
    ("sweep-rescore-bad-module", "sweep rescore {sweep} --analysis nosuchmod:fn --no-progress", 2, ["nosuchmod"]),
    ("sweep-expand-missing", "sweep expand {tmp}/missing.yaml", 2, ["missing.yaml"]),
    ("sweep-expand-dir", "sweep expand {tmp}", 2, ["{tmp}"]),
    ("sweep-expand-bad-yaml", "sweep expand {c:spec_bad.yaml}", 2, ["spec_bad.yaml"]),
    ("sweep-expand-python-tag", "sweep expand {c:spec_python.yaml}", 2, ["spec_python.yaml"]),
    ("sweep-expand-unknown-key", "sweep expand {c:spec_unknown.yaml}", 2, ["bogus"]),
    ("sweep-expand-bad-param", "sweep expand {c:spec_badkey.yaml}", 2, ["learnin_rate"]),
    ("sweep-expand-show-text", "sweep expand {spec} --show many", 2, ["--show"]),
    # --- theory predict ----------------------------------------------------------------------
    ("theory-missing", "theory predict {tmp}/missing.yaml", 2, ["missing.yaml", "does not exist"]),
    ("theory-missing-preset", "theory predict no_such_preset", 2, ["no_such_preset"]),
    ("theory-empty-dir", "theory predict {tmp}/emptydir", 2, ["emptydir"]),
    ("theory-bad-yaml", "theory predict {c:bad.yaml}", 2, ["bad.yaml"]),
    ("theory-python-tag", "theory predict {c:python.yaml}", 2, ["not allowed"]),
    ("theory-unknown-key", "theory predict {c:unknown.yaml}", 2, ["modle"]),
    ("theory-bad-kind", "theory predict {c:badkind.yaml}", 2, ["target.kind"]),
    ("theory-out-file", "theory predict {cfg} --out {file}", 2, ["--out", "is a file"]),
    ("theory-out-readonly", "theory predict {cfg} --out {ro}/t", 2, ["{ro}"]),
    ("theory-runs-missing", "theory predict {cfg} --runs {tmp}/nope --resolution 0.05", 2, ["nope"]),
    ("theory-resolution-zero", "theory predict {cfg} --resolution 0", 2, ["--resolution"]),
    ("theory-resolution-negative", "theory predict {cfg} --resolution -1", 2, ["--resolution"]),
    ("theory-units-zero", "theory predict {cfg} --units 0", 2, ["--units"]),
    ("theory-threshold-text", "theory predict {cfg} --threshold high", 2, ["--threshold"]),
    # --- neural fit --------------------------------------------------------------------------
    ("neural-model-missing", "neural fit --model {tmp}/nope --data {tmp}/d.npz", 2, ["nope"]),
    ("neural-model-empty", "neural fit --model {tmp}/emptydir --data {tmp}/d.npz", 2, ["emptydir", "rate maps"]),
    ("neural-method", "neural fit --model {run} --data {tmp}/d.npz --method lasso", 2, ["--method", "lasso"]),
    ("neural-data-missing", "neural fit --model {run} --data {tmp}/d.npz", 2, ["d.npz"]),
    ("neural-data-dir", "neural fit --model {run} --data {tmp}/emptydir", 2, ["emptydir"]),
    ("neural-data-text", "neural fit --model {run} --data {c:notes.txt}", 2, ["notes.txt"]),
    ("neural-data-pickle", "neural fit --model {run} --data {c:data.pkl}", 2, ["data.pkl"]),
    ("neural-folds-one", "neural fit --model {run} --data {tmp}/d.npz --n-folds 1", 2, ["--n-folds"]),
    ("neural-missing-model", "neural fit --data {tmp}/d.npz", 2, ["--model"]),
    ("neural-missing-data", "neural fit --model {run}", 2, ["--data"]),
    # --- reproduce / report ------------------------------------------------------------------
    ("reproduce-preset-missing", "reproduce --preset enormous", 2, ["enormous", "tiny"]),
    ("reproduce-preset-dir", "reproduce --preset {tmp}", 2, ["is a directory"]),
    ("reproduce-preset-bad-yaml", "reproduce --preset {c:bad.yaml}", 2, ["bad.yaml"]),
    ("reproduce-preset-python", "reproduce --preset {c:python.yaml}", 2, ["not allowed"]),
    ("reproduce-preset-unknown", "reproduce --preset {c:preset_unknown.yaml}", 2, ["bogus", "unknown key"]),
    ("reproduce-preset-base", "reproduce --preset {c:preset_badbase.yaml}", 2, ["no_such_config"]),
    ("reproduce-device", "reproduce --preset tiny --device potato", 2, ["--device", "potato"]),
    ("reproduce-out-file", "reproduce --preset tiny --out {file}", 2, ["--out", "is a file"]),
    ("reproduce-out-readonly", "reproduce --preset tiny --out {ro}/r", 2, ["{ro}"]),
    ("reproduce-max-trials", "reproduce --preset tiny --max-trials -1", 2, ["--max-trials"]),
    ("reproduce-workers", "reproduce --preset tiny --workers -1", 2, ["--workers"]),
    ("report-missing", "report {tmp}/nope", 2, ["nope"]),
    ("report-file", "report {file}", 2, ["notes.txt"]),
    ("report-not-sweep", "report {tmp}/emptydir", 2, ["emptydir"]),
    ("report-out-file", "report {rsweep} --out {file} --no-predictivity --no-figures", 2, ["--out", "is a file"]),
    ("report-out-readonly", "report {rsweep} --out {ro}/rep --no-predictivity --no-figures", 2, ["--out", "{ro}"]),
    ("report-plain-sweep", "report {sweep} --no-predictivity --no-figures", 2, ["not a reproduction sweep"]),
]
# fmt: on


def _digest_tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    """A trained and scored tiny run and a finished one-trial sweep (read-only for the cases)."""
    from gridsweep.config import load_config
    from gridsweep.evaluation import score_run
    from gridsweep.sweeps.runner import run_sweep
    from gridsweep.training import train

    root = tmp_path_factory.mktemp("shared")
    (root / "tiny.yaml").write_text(TINY)
    cfg = load_config(root / "tiny.yaml")
    ens, res = train(cfg, root / "run", progress=False)
    assert res.status == "done"
    score_run(root / "run", ens, n_samples=500, bins=8, figures=False)
    (root / "spec.yaml").write_text(SPEC)
    rep = run_sweep(root / "spec.yaml", root / "sweep", workers=0, analysis="none", progress=False)
    assert rep.counts["done"] == 1
    from test_reproduce_helpers import make_fake_sweep

    make_fake_sweep(root / "rsweep")  # a reproduction sweep directory (stored numbers only)
    return root


def _readonly_dir(tmp: Path) -> Path | None:
    ro = tmp / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").write_text("x")
    except PermissionError:
        return ro
    (ro / "probe").unlink()  # root: permission bits do not bind; the kernel's /sys refuses everyone
    ro.chmod(0o755)
    sysdir = Path("/sys")
    if sysdir.is_dir():
        try:
            (sysdir / "gridsweep-probe").mkdir()
        except OSError:
            return sysdir
    return None


def _damage(run_copy: Path, how: str) -> None:
    kind, _, rel = how.partition(":")
    target = run_copy / rel
    if kind == "rm":
        target.unlink()
    elif kind == "truncate":
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif kind == "header":
        data = bytearray(target.read_bytes())
        data[:16] = b"\x00" * 16
        target.write_bytes(bytes(data))
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "pickle":
        target.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00N.")
    elif kind == "badconfig":
        target.write_text("modle: {}\n")
    elif kind == "pyconfig":
        target.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    elif kind == "dirconfig":
        target.unlink()
        target.mkdir()
    # a damaged file no longer matches its checksum sidecar; drop the sidecar so the
    # reader must notice the damage itself, not only through the checksum
    side = target.with_name(target.name + ".sha256")
    if side.exists() and kind != "rm":
        side.unlink()


def _params():
    for case in CASES:
        cid, argv, code, needles = case[:4]
        xfail = case[4] if len(case) > 4 else None
        damage = case[5] if len(case) > 5 else None
        marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
        yield pytest.param(argv, code, needles, damage, id=cid, marks=marks)


def test_there_are_enough_cases_and_every_command_is_covered():
    assert len(CASES) >= 120
    ids = [c[0] for c in CASES]
    assert len(set(ids)) == len(ids)
    text = " ".join(c[1] for c in CASES)
    for cmd in ("train", "score", "sweep run", "sweep status", "sweep export", "sweep rescore", "sweep expand",
                "theory predict", "neural fit", "reproduce", "report", "config show", "config presets"):
        assert cmd in text, cmd


@pytest.mark.parametrize("argv, code, needles, damage", list(_params()))
def test_bad_input(argv, code, needles, damage, shared, tmp_path, monkeypatch, capsys):
    import shlex

    import torch

    from gridsweep.cli import main

    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name, content in FILES.items():
        p = work / name
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    (work / "cfg.yaml").write_text(TINY)
    (work / "spec.yaml").write_text(SPEC)
    (work / "emptydir").mkdir()
    subs = {"tmp": str(work), "cfg": str(work / "cfg.yaml"), "spec": str(work / "spec.yaml"),
            "run": str(shared / "run"), "sweep": str(shared / "sweep"), "rsweep": str(shared / "rsweep"),
            "file": str(work / "notes.txt")}
    if "{ro}" in argv:
        ro = _readonly_dir(tmp_path)
        if ro is None:
            pytest.skip("no read-only directory available")
        subs["ro"] = str(ro)
    if "{copy}" in argv:
        shutil.copytree(shared / "run", work / "copy")
        subs["copy"] = str(work / "copy")
        _damage(work / "copy", damage)
    text = re.sub(r"\{c:([^}]+)\}", lambda m: str(work / m.group(1)), argv)
    args = [a.format(**subs) for a in shlex.split(text)]
    needles = [n.format(**subs) for n in needles]

    before = {"work": _digest_tree(work), "shared": _digest_tree(shared)}
    status = main(args)
    out, err = capsys.readouterr()

    assert "Traceback" not in out + err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("error: "), line
    for n in needles:
        assert n.lower() in line.lower(), f"{n!r} not in {line!r}"
    assert status == code, line
    after_work = _digest_tree(work)
    assert {k: v for k, v in after_work.items() if k in before["work"]} == before["work"], "a file was changed"
    assert _digest_tree(shared) == before["shared"], "the shared run or sweep was changed"
    assert not (tmp_path.parent / "elsewhere").exists() and not (work.parent.parent / "elsewhere").exists()
