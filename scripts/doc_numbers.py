"""Regenerate the numbers of docs/reproduce.md from the preset files and a results.json.

    python scripts/doc_numbers.py [--preset quick] [--results PATH] [--doc docs/reproduce.md]

Writes the marked blocks (``<!-- BEGIN GENERATED: ... -->``) of the document: the preset
table, the verdict rules, and the verdicts and per-network numbers of the preset's
``results.json`` (default ``sweeps_out/reproduce_<preset>/report/results.json``) with the
commit that produced them. See gridsweep.reproduce.docnumbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gridsweep.reproduce.docnumbers import DocError, update_doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--results", type=Path, default=None)
    ap.add_argument("--doc", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "reproduce.md")
    a = ap.parse_args(argv)
    try:
        written = update_doc(a.doc, a.preset, a.results)
    except DocError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{a.doc}: regenerated {', '.join(written) or 'nothing (no marked blocks)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
