import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_cfg():
    """A RunConfig small enough to train in well under a second per step."""
    from gridsweep.config import RunConfig

    return RunConfig().with_overrides({
        "model.hidden_size": 16, "target.n_cells": 16, "trajectory.batch_size": 8,
        "trajectory.sequence_length": 5, "training.n_steps": 20, "training.eval_every": 10,
        "training.checkpoint_every": 5, "training.log_every": 5, "training.learning_rate": 1e-3,
        "evaluation.n_trajectories": 8, "evaluation.sequence_length": 5, "evaluation.ratemap_samples": 2000,
    })
