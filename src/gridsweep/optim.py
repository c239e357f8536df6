"""Optimisers with per-network hyperparameters for stacked (E, ...) parameters.

``torch.optim`` applies one learning rate to a whole tensor; an ensemble of E networks
stored in one tensor needs one per network, and scaling gradients is no substitute for
Adam or RMSProp (their step is invariant to gradient scale). These optimisers follow
the update rules of ``torch.optim.Adam``, ``RMSprop`` and ``SGD`` term by term, with
``lr`` and ``momentum`` as (E,) tensors, per-network gradient-norm clipping, and an
``active`` mask that freezes networks that diverged.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["EnsembleOptimizer", "clip_grad_norm_per_network"]


def _bcast(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, *([1] * (like.ndim - 1)))


def clip_grad_norm_per_network(params: Sequence[torch.Tensor], max_norm: torch.Tensor) -> torch.Tensor:
    """Scale each network's gradients so its global L2 norm is at most ``max_norm[e]``.

    Follows ``torch.nn.utils.clip_grad_norm_`` (coefficient max_norm / (norm + 1e-6),
    clamped at 1) separately for every network. Returns the (E,) norms before clipping.
    """
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.sqrt(sum(g.pow(2).reshape(g.shape[0], -1).sum(-1) for g in grads))
    coef = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
    for g in grads:
        g.mul_(_bcast(coef, g))
    return norms


class EnsembleOptimizer:
    """Adam, RMSProp or SGD over stacked parameters with (E,) hyperparameters.

    Parameters
    ----------
    params : sequence of Tensor, each (E, ...)
    kind : {"adam", "rmsprop", "sgd"}
    lr : Tensor, (E,)
    momentum : Tensor, (E,)  (RMSProp and SGD; ignored by Adam)
    betas, eps : Adam's (0.9, 0.999) and 1e-8, torch's defaults
    alpha : RMSProp smoothing constant (torch default 0.99)
    """

    def __init__(self, params: Sequence[torch.Tensor], kind: str, lr: torch.Tensor,
                 momentum: torch.Tensor | None = None, betas=(0.9, 0.999), eps: float = 1e-8, alpha: float = 0.99):
        self.params = [p for p in params]
        self.kind = kind
        self.lr = lr
        self.momentum = torch.zeros_like(lr) if momentum is None else momentum
        self.betas, self.eps, self.alpha = betas, eps, alpha
        E = lr.shape[0]
        self.step_count = torch.zeros(E, dtype=torch.float64, device=lr.device)
        self.state: list[dict[str, torch.Tensor]] = [dict() for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        """Update every active network; inactive ones (and their state) stay as they are."""
        E = self.lr.shape[0]
        if active is None:
            active = torch.ones(E, dtype=torch.bool, device=self.lr.device)
        self.step_count += active.to(self.step_count.dtype)
        for p, st in zip(self.params, self.state):
            if p.grad is None:
                continue
            mask = _bcast(active, p)
            g = torch.where(mask, p.grad, torch.zeros_like(p.grad))
            lr = _bcast(self.lr, p).to(p.dtype)
            if self.kind == "adam":
                b1, b2 = self.betas
                m = st.setdefault("exp_avg", torch.zeros_like(p))
                v = st.setdefault("exp_avg_sq", torch.zeros_like(p))
                m_new = m * b1 + g * (1 - b1)
                v_new = v * b2 + g * g * (1 - b2)
                t = _bcast(self.step_count, p).clamp_min(1)
                bc1 = 1 - b1 ** t
                bc2 = 1 - b2 ** t
                denom = (v_new.sqrt() / bc2.sqrt().to(p.dtype)) + self.eps
                update = -(lr / bc1.to(p.dtype)) * m_new / denom
                m.copy_(torch.where(mask, m_new, m))
                v.copy_(torch.where(mask, v_new, v))
            elif self.kind == "rmsprop":
                sq = st.setdefault("square_avg", torch.zeros_like(p))
                sq_new = sq * self.alpha + g * g * (1 - self.alpha)
                avg = sq_new.sqrt() + self.eps
                mom = _bcast(self.momentum, p).to(p.dtype)
                buf = st.setdefault("momentum_buffer", torch.zeros_like(p))
                buf_new = buf * mom + g / avg
                update = -lr * buf_new
                sq.copy_(torch.where(mask, sq_new, sq))
                buf.copy_(torch.where(mask, buf_new, buf))
            elif self.kind == "sgd":
                mom = _bcast(self.momentum, p).to(p.dtype)
                buf = st.setdefault("momentum_buffer", torch.zeros_like(p))
                first = _bcast(self.step_count == 1, p)
                buf_new = torch.where(first, g, buf * mom + g)
                update = -lr * buf_new
                buf.copy_(torch.where(mask, buf_new, buf))
            else:
                raise ValueError(f"training.optimizer={self.kind!r}: allowed adam, rmsprop, sgd")
            p.add_(torch.where(mask, update, torch.zeros_like(update)))

    # -- checkpointing ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"kind": self.kind, "lr": self.lr.clone(), "momentum": self.momentum.clone(),
                "step_count": self.step_count.clone(),
                "state": [{k: v.clone() for k, v in st.items()} for st in self.state]}

    def load_state_dict(self, sd: dict) -> None:
        self.lr = sd["lr"].to(self.lr.device)
        self.momentum = sd["momentum"].to(self.lr.device)
        self.step_count = sd["step_count"].to(self.lr.device)
        self.state = [{k: v.to(p.device) for k, v in st.items()} for st, p in zip(sd["state"], self.params)]

    def select_state(self, index: Sequence[int]) -> dict:
        """The state dict of networks ``index`` alone."""
        idx = list(index)
        return {"kind": self.kind, "lr": self.lr[idx].clone(), "momentum": self.momentum[idx].clone(),
                "step_count": self.step_count[idx].clone(),
                "state": [{k: v[idx].clone() for k, v in st.items()} for st in self.state]}

    @staticmethod
    def stack_states(states: Sequence[dict]) -> dict:
        """Concatenate per-network state dicts (inverse of :meth:`select_state`)."""
        out = {"kind": states[0]["kind"]}
        for k in ("lr", "momentum", "step_count"):
            out[k] = torch.cat([s[k] for s in states])
        out["state"] = []
        for i in range(len(states[0]["state"])):
            keys = set().union(*(s["state"][i].keys() for s in states))
            out["state"].append({k: torch.cat([s["state"][i][k] for s in states]) for k in keys})
        return out
