"""``python -m gridsweep.sweeps run SPEC ...`` (the same commands as ``gridsweep sweep``)."""

from gridsweep.sweeps.cli import main

if __name__ == "__main__":
    main()
