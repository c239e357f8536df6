"""A tiny sweep spec shared by the fault and Ray tests: 2 cells x 2 learning rates x 2 seeds."""

from __future__ import annotations


def tiny_grid_spec(name: str, n_steps: int, eval_every: int, checkpoint_every: int) -> str:
    """YAML of 8 trials of 16-unit networks (RNN and GRU, lr 1e-3 and 1e-2, seeds 0 and 1)."""
    return f"""\
name: {name}
base:
  target: {{n_cells: 16, surround_width_ratio: 2.0}}
  model: {{hidden_size: 16}}
  trajectory: {{batch_size: 8}}
  training: {{n_steps: {n_steps}, eval_every: {eval_every}, checkpoint_every: {checkpoint_every}}}
  evaluation: {{n_trajectories: 8}}
grid:
  model.cell: [rnn, gru]
  training.learning_rate: [1.0e-3, 1.0e-2]
seeds: 2
"""
