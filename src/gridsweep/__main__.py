"""``python -m gridsweep``: the ``gridsweep`` command (see :mod:`gridsweep.cli`)."""

import sys

from gridsweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
