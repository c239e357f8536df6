"""What the papers reported, claim by claim, as data.

Every number here is transcribed from ``docs/science.md`` section 1 (the table "The claims
to reproduce", NeurIPS numbering) and cites the section it comes from; the report prints
them next to what a run measured. Nothing here is computed: verdicts live in
:mod:`gridsweep.reproduce.verdicts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["PaperNumber", "Claim", "CLAIMS", "CLAIM_IDS", "claim", "published_claims"]


@dataclass(frozen=True)
class PaperNumber:
    """One published number: what it measures, its value, where it comes from."""

    label: str
    value: float | str
    source: str
    unit: str = ""
    key: str = ""  # the measured quantity it is compared with (verdicts.Measured.key); "" = context only

    @property
    def number(self) -> float | None:
        """The value as a number for comparison (``"~0"`` -> 0.0), None when not a single number."""
        if isinstance(self.value, (int, float)):
            return float(self.value)
        txt = str(self.value).strip().lstrip("~").replace(",", "")
        try:
            return float(txt)
        except ValueError:
            return None


@dataclass(frozen=True)
class Claim:
    """A published claim and the numbers behind it."""

    id: str
    title: str
    statement: str
    section: str
    numbers: tuple[PaperNumber, ...] = field(default_factory=tuple)
    side: str = "NFL"  # "NFL" (Schaeffer et al.) or "rebuttal" (Sorscher et al. 2022)


_S1 = "docs/science.md section 1"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "R1", "Most networks path-integrate; few have grid-like units",
        "Across a broad sweep, most trained networks reach low decoding error, and only a minority of "
        "those have any unit with a grid score above 0.8.",
        _S1,
        (
            PaperNumber("networks trained (ICML)", 3547, "ICML 2022 workshop"),
            PaperNumber("fraction with decoding error < 15 cm (ICML)", 0.605, "ICML 2022 workshop; low error: < 15 cm",
                        key="p_low"),
            PaperNumber("fraction of those with a unit of grid score > 0.8 (ICML)", 0.117, "ICML 2022 workshop",
                        key="p_grid"),
            PaperNumber("fraction of all networks with such a unit (ICML)", "~0.07", "ICML 2022 workshop",
                        key="p_grid_all"),
            PaperNumber("networks trained (NeurIPS; low-error threshold 10 cm)", 11608, "NeurIPS 2022",
                        key="n_networks"),
        ),
    ),
    Claim(
        "R2", "Only DoS targets give grids",
        "Among networks with low decoding error, grid-like units (max score > 0.8) appear for "
        "difference-of-softmaxed-Gaussians (DoS) targets and (almost) never for Cartesian, polar, "
        "Gaussian or equi-norm DoG targets.",
        _S1 + " (NeurIPS Fig. 2)",
        (
            PaperNumber("P(max score > 0.8 | low error), Cartesian", "~0", "NeurIPS Fig. 2", key="p_grid:cartesian"),
            PaperNumber("P(max score > 0.8 | low error), polar", 0.24, "NeurIPS Fig. 2", key="p_grid:polar_highdim"),
            PaperNumber("P(max score > 0.8 | low error), Gaussian", 0.08, "NeurIPS Fig. 2", key="p_grid:gaussian"),
            PaperNumber("P(max score > 0.8 | low error), equi-norm DoG", 0.16, "NeurIPS Fig. 2", key="p_grid:dog_equinorm"),
            PaperNumber("P(max score > 0.8 | low error), DoS", 0.91, "NeurIPS Fig. 2", key="p_grid:dos"),
        ),
    ),
    Claim(
        "R3", "Grid period is set by the readout width; one period per setting, no modules",
        "The mode of the grid period rises roughly linearly with the readout width sigma; within one "
        "setting the period distribution is unimodal (adjacent-mode ratios near 1, unlike the brain's ~1.4).",
        _S1,
        (
            PaperNumber("sigma range over which the period mode rises ~linearly", "0.08-0.20", "NeurIPS", "m"),
            PaperNumber("ratio of adjacent period modes, low", 0.99, "NeurIPS", key="mode_ratios"),
            PaperNumber("ratio of adjacent period modes, high", 1.15, "NeurIPS", key="mode_ratios"),
            PaperNumber("ratio of adjacent modules in the brain", "~1.4", "NeurIPS (citing experiments)"),
        ),
    ),
    Claim(
        "R4", "Fourier analysis of a Turing instability explains R2 and R3",
        "Targets whose spatial spectrum peaks on a ring at k* > 0 give grids, others do not; the "
        "predicted hexagonal spacing 4 pi / (sqrt(3) k*) tracks the measured grid period.",
        _S1 + "; docs/science.md section 5",
        (
            PaperNumber("unit-integral DoG ring", "k*^2 = 2 ln(sI^2/sE^2)/(sI^2 - sE^2)", "docs/science.md section 5"),
            PaperNumber("hexagonal spacing", "4 pi / (sqrt(3) k*)", "docs/science.md section 5"),
            PaperNumber("Gaussian, Cartesian, polar", "no ring", "docs/science.md section 5"),
        ),
    ),
    Claim(
        "R5", "Grid emergence is very sensitive to the readout width",
        "The percentage of grid units peaks at some sigma and dips at neighbouring values 0.01 m away "
        "(contested by Sorscher et al.: robust over 0.11-0.13 m with a 10x learning rate and 1/10 of the steps).",
        _S1,
        (
            PaperNumber("peaks of % units above threshold at sigma", "0.10, 0.12, 0.15", "NFL", "m"),
            PaperNumber("dips at sigma", "0.11, 0.13", "NFL", "m", key="dips"),
            PaperNumber("rebuttal: robust over sigma", "0.11-0.13", "Sorscher et al. 2022", "m"),
        ),
    ),
    Claim(
        "R6", "Heterogeneous multi-field place cells: path integration unaffected, grids vanish",
        "With 1 + Poisson(3) fields per cell and per-field widths and surround ratios drawn from wide "
        "ranges, networks still path-integrate but grid-like units disappear.",
        _S1,
        (
            PaperNumber("fields per cell", "1 + Poisson(3)", "NFL"),
            PaperNumber("per-field sigma ~ U", "(0.06, 1.0)", "NFL", "m"),
            PaperNumber("per-field surround width ratio ~ U", "(1.25, 4.5)", "NFL"),
            PaperNumber("milder: sigma ~ U, ratio ~ U", "(0.06, 0.18), (1.5, 2.5)", "NFL"),
        ),
    ),
    Claim(
        "R7", "Published grids relied on softmax normalisation (DoS), not the DoG the papers describe",
        "Equi-norm difference-of-Gaussians targets give no grids where DoS targets do; in an "
        "amplitude-ratio sweep almost no run reaches DoS-level scores.",
        _S1,
        (
            PaperNumber("P(max score > 0.8 | low error), equi-norm DoG", 0.16, "NeurIPS Fig. 2", key="p_grid:dog_equinorm"),
            PaperNumber("P(max score > 0.8 | low error), DoS", 0.91, "NeurIPS Fig. 2", key="p_grid:dos"),
            PaperNumber("amplitude-ratio runs reaching DoS-level scores", "1 of 1,086", "NFL", key="amp_hits"),
        ),
    ),
    Claim(
        "B1", "Rebuttal: a properly normalised (unit-integral) DoG gives grids",
        "Sorscher et al. (2022): with unit-integral amplitudes alpha_E = 1/(2 pi sigma_E^2), alpha_I = "
        "1/(2 pi sigma_I^2) the DoG behaves like DoS, so what matters is the centre-surround balance, not the softmax.",
        "docs/science.md sections 1, 3 and 5",
        (
            PaperNumber("unit-integral amplitudes", "alpha = 1/(2 pi sigma^2)", "docs/science.md section 5"),
            PaperNumber("DoS approximates the unit-integral DoG", "softmax divides by ~rho 2 pi sigma^2",
                        "docs/science.md section 5"),
        ),
        side="rebuttal",
    ),
    Claim(
        "B2", "Rebuttal: multi-field cells with a single-scale centre-surround keep grids",
        "Sorscher et al. (2022): several fields per cell do not by themselves remove grids; the "
        "heterogeneity of scale does.",
        "docs/science.md sections 1 and 3",
        (PaperNumber("fields per cell", "1 + Poisson(3), one sigma and surround ratio", "Sorscher et al. 2022"),),
        side="rebuttal",
    ),
    Claim(
        "P", "Neural predictivity rises with the dimensionality of the model's basis",
        "Linear-regression predictivity of MEC cells grows with the participation ratio of the model's "
        "rate maps, whatever the model computes, so it must be compared with dimension-matched nulls.",
        _S1 + "; docs/science.md section 7",
        (
            PaperNumber("RNN: predictivity (PR)", "0.68 (3.4)", "Nayebi et al. 2021", key="pred:rnn"),
            PaperNumber("SRNN: predictivity (PR)", "0.78 (4.9)", "Nayebi et al. 2021", key="pred:srnn"),
            PaperNumber("GRU: predictivity (PR)", "0.76 (9.4)", "Nayebi et al. 2021", key="pred:gru"),
            PaperNumber("LSTM: predictivity (PR)", "0.79 (8.8)", "Nayebi et al. 2021", key="pred:lstm"),
            PaperNumber("UGRNN: predictivity (PR)", "0.81 (16.7)", "Nayebi et al. 2021", key="pred:ugrnn"),
        ),
    ),
)

CLAIM_IDS: tuple[str, ...] = tuple(c.id for c in CLAIMS)

#: Nayebi et al.'s published (participation ratio, predictivity) per architecture.
NAYEBI_PUBLISHED = {"RNN": (3.4, 0.68), "SRNN": (4.9, 0.78), "GRU": (9.4, 0.76), "LSTM": (8.8, 0.79),
                    "UGRNN": (16.7, 0.81)}

#: The published P(max score > 0.8 | low error) per target kind (NeurIPS Fig. 2).
PUBLISHED_P_GRID = {"cartesian": 0.0, "polar_highdim": 0.24, "gaussian": 0.08, "dog_equinorm": 0.16, "dos": 0.91}


def published_claims() -> tuple[Claim, ...]:
    """:data:`CLAIMS` with values and sources read from ``gridsweep/data/published.yaml``.

    Entries are joined on (claim, ``report_label`` = the label here); a number the file
    does not hold keeps the value transcribed here. Two entries under one label (P:
    predictivity and participation ratio) give ``"0.68 (3.4)"``. Without
    :mod:`gridsweep.published` (or with a malformed file) the transcription is used.
    """
    try:
        from gridsweep.published import load_published

        pub = load_published()
    except Exception:  # noqa: BLE001 - the report must not fail for want of the data file
        return CLAIMS
    by_label: dict[tuple[str, str], list[Any]] = {}
    for n in pub.values():
        if n.report_label:
            by_label.setdefault((n.claim, n.report_label), []).append(n)
    out = []
    for c in CLAIMS:
        nums = []
        for pn in c.numbers:
            hits = by_label.get((c.id, pn.label), [])
            if len(hits) == 1:
                h = hits[0]
                # a number replaces a number; a structured phrase ("1 + Poisson(3)") keeps its wording
                num = isinstance(h.value, (int, float)) and not isinstance(h.value, bool)
                value = (h.value if not h.approx else h.text) if num and pn.number is not None else pn.value
                pn = replace(pn, value=value, source=h.source)
            elif len(hits) == 2 and c.id == "P":
                pred = next((h for h in hits if h.key.endswith("predictivity")), hits[0])
                pr = next((h for h in hits if h is not pred), hits[1])
                pn = replace(pn, value=f"{pred.text} ({pr.text})", source=pred.source)
            nums.append(pn)
        out.append(replace(c, numbers=tuple(nums)))
    return tuple(out)


def claim(claim_id: str) -> Claim:
    """The claim with this id (``R1`` ... ``R7``, ``B1``, ``B2``, ``P``)."""
    for c in CLAIMS:
        if c.id == claim_id:
            return c
    raise KeyError(f"unknown claim {claim_id!r}; claims: {', '.join(CLAIM_IDS)}")
