"""``python -m gridsweep.sweeps run SPEC ...`` (the same commands as ``gridsweep sweep``)."""

from gridsweep.sweeps.cli import app

if __name__ == "__main__":
    app(prog_name="gridsweep sweep")
