"""Explicit, named random streams derived from one run seed.

Every random draw in gridsweep flows from a run's integer seed through a named stream
(``"weights"``, ``"targets"``, ``"trajectories"``, ...), so that changing how one stream
is consumed never changes another, and nothing reads global RNG state.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

__all__ = ["derive_seed", "torch_generator", "numpy_generator"]


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for ``stream`` derived deterministically from ``seed``."""
    digest = hashlib.sha256(f"{int(seed)}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def torch_generator(seed: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from ``(seed, stream)``."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, stream))


def numpy_generator(seed: int, stream: str) -> np.random.Generator:
    """A ``numpy.random.Generator`` seeded from ``(seed, stream)``."""
    return np.random.default_rng(derive_seed(seed, stream))
