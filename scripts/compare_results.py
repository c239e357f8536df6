"""Whether two reproduction reports agree: every verdict, reason, interval and per-network number.

    python scripts/compare_results.py A/report/results.json B/report/results.json

Compares the two ``results.json`` files key by key, leaving out what describes the run
rather than its numbers (``generated``, ``reproducibility``: commit, versions, threads,
ensemble sizes; ``sweep_dir``), prints each key as identical or the first differences,
then the two runs' provenance. Exits 0 when everything compared is identical, 1 if not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: Keys that describe how and where a report was made, not what it measured.
PROVENANCE = ("generated", "reproducibility", "sweep_dir")


def differences(a: dict[str, Any], b: dict[str, Any], limit: int = 5) -> dict[str, list[str]]:
    """Per top-level key (provenance left out), up to ``limit`` lines describing differences."""
    out: dict[str, list[str]] = {}
    for k in sorted(set(a) | set(b)):
        if k in PROVENANCE or a.get(k) == b.get(k):
            continue
        x, y = a.get(k), b.get(k)
        lines: list[str] = []
        if isinstance(x, dict) and isinstance(y, dict):
            lines = [f"{kk}: {x.get(kk)!r:.200} != {y.get(kk)!r:.200}" for kk in sorted(set(x) | set(y))
                     if x.get(kk) != y.get(kk)]
        elif isinstance(x, list) and isinstance(y, list):
            lines = [f"[{i}]: {u!r:.200} != {v!r:.200}" for i, (u, v) in enumerate(zip(x, y)) if u != v]
            if len(x) != len(y):
                lines.append(f"lengths {len(x)} != {len(y)}")
        else:
            lines = [f"{x!r:.200} != {y!r:.200}"]
        out[k] = lines[:limit]
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    a, b = (json.loads(Path(p).read_text()) for p in args)
    diff = differences(a, b)
    for k in sorted((set(a) | set(b)) - set(PROVENANCE)):
        print(f"{k:<12} {'DIFFERENT' if k in diff else 'identical'}")
        for line in diff.get(k, []):
            print(f"    {line}")
    for name, r in (("A", a), ("B", b)):
        rec = r.get("reproducibility") or {}
        print(f"{name}: commit {str(rec.get('commit'))[:10]}, threads {rec.get('torch_threads')}, "
              f"ensemble sizes {rec.get('ensemble_sizes')}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
