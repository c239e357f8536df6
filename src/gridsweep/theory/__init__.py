"""Theory of grid emergence: readout covariance spectra, predicted spacing, pattern formation.

The study's explanation (docs/science.md section 5): the spatial covariance of the readout
targets is the interaction kernel of a pattern-forming system, and a periodic (Turing)
pattern appears only when its Fourier spectrum peaks on a ring at ``k* > 2 pi / L``; a
hexagonal lattice at wave number ``k*`` has spacing ``4 pi / (sqrt(3) k*)``.

Public API
----------
predict(targets) -> Prediction
    Numerical ring radius, spacing and ring existence of actual targets, with the
    closed form of the kind.
spectrum(targets) -> Spectrum; radial_profile(spec) -> (k, S_bar)
    The readout covariance spectrum and its exact angular average.
phase_diagram(sigmas, ratios), amplitude_phase_diagram(alpha_ratios, ratios)
    Where a ring exists, and its spacing.
simulate_patterns(targets) -> PatternResult
    Gradient ascent of ``g^T Sigma g`` under a non-negativity constraint.
collect_runs(paths) / plot_predicted_vs_measured(...)
    Theory against trained networks.

See ``docs/theory.md``.
"""

from gridsweep.theory.closed_forms import (
    CLOSED_FORMS,
    ClosedForm,
    closed_form,
    closed_form_profile,
    dog_k_star,
    dog_transform,
    hex_spacing,
    min_ring_k,
    sigma_i_from_ratio,
)
from gridsweep.theory.compare import collect_runs, find_run_dirs, plot_predicted_vs_measured, summarise_by_sigma
from gridsweep.theory.pattern import PatternResult, box_covariance, score_patterns, simulate_patterns
from gridsweep.theory.phase import PhaseDiagram, amplitude_phase_diagram, phase_diagram, plot_phase_diagram
from gridsweep.theory.plots import plot_patterns, plot_spectrum
from gridsweep.theory.predict import Prediction, predict, resolve_target, spectrum
from gridsweep.theory.spectrum import RingInfo, Spectrum, find_ring, radial_profile, readout_spectrum, target_maps

__all__ = [
    "predict",
    "Prediction",
    "spectrum",
    "radial_profile",
    "readout_spectrum",
    "target_maps",
    "find_ring",
    "Spectrum",
    "RingInfo",
    "resolve_target",
    "closed_form",
    "closed_form_profile",
    "ClosedForm",
    "CLOSED_FORMS",
    "dog_transform",
    "dog_k_star",
    "hex_spacing",
    "min_ring_k",
    "sigma_i_from_ratio",
    "phase_diagram",
    "amplitude_phase_diagram",
    "plot_phase_diagram",
    "PhaseDiagram",
    "simulate_patterns",
    "score_patterns",
    "box_covariance",
    "PatternResult",
    "plot_spectrum",
    "plot_patterns",
    "collect_runs",
    "find_run_dirs",
    "summarise_by_sigma",
    "plot_predicted_vs_measured",
]
