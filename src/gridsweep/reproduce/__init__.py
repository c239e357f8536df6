"""One-command reproduction of the No Free Lunch study and its report.

``gridsweep reproduce --preset tiny|quick|full`` trains every sweep behind claims
R1-R7 and P (docs/science.md section 1) and the rebuttal's checks (B1, B2) into one sweep
directory and writes ``report.html``; ``gridsweep report SWEEP_DIR`` rewrites the report
from the stored numbers. See docs/reproduce.md.
"""

from gridsweep.reproduce.claims import CLAIM_IDS, CLAIMS, Claim, PaperNumber, claim
from gridsweep.reproduce.presets import Preset, RuleParams, build_cases, load_preset
from gridsweep.reproduce.report import Report, build_report
from gridsweep.reproduce.run import ReproduceResult, build_spec, reproduce
from gridsweep.reproduce.verdicts import ClaimResult, evaluate_all

__all__ = ["CLAIMS", "CLAIM_IDS", "Claim", "PaperNumber", "claim", "Preset", "RuleParams", "load_preset",
           "build_cases", "build_spec", "reproduce", "ReproduceResult", "build_report", "Report", "ClaimResult",
           "evaluate_all"]
