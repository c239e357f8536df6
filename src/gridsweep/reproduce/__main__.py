import sys

from gridsweep.cli import run_subapp
from gridsweep.reproduce.cli import app

sys.exit(run_subapp(app, "python -m gridsweep.reproduce"))
