from gridsweep.reproduce.cli import app

app(prog_name="python -m gridsweep.reproduce")
