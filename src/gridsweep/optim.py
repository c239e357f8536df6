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

    def _buffer(self, st: dict[str, torch.Tensor], key: str, p: torch.Tensor) -> torch.Tensor:
        if key not in st:
            st[key] = torch.zeros_like(p)
        return st[key]

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None, lr_scale: float = 1.0) -> None:
        """Update every active network; inactive ones (and their state) stay as they are.

        ``lr_scale`` multiplies every network's learning rate for this step (the
        schedule's factor, shared by the ensemble); the stored ``lr`` is not changed.

        In-place, allocation-light form of torch's update rules. Per-network coefficients
        are (E,) tensors, so nothing is read back from a GPU. An inactive network gets
        zero gradient, unit decay factors and a zero update, so its weights and state are
        left bit-for-bit unchanged.
        """
        E = self.lr.shape[0]
        if active is None:
            active = torch.ones(E, dtype=torch.bool, device=self.lr.device)
        if self.kind not in ("adam", "rmsprop", "sgd"):
            raise ValueError(f"training.optimizer={self.kind!r}: allowed adam, rmsprop, sgd")
        self.step_count += active.to(self.step_count.dtype)
        on = active.to(torch.float64)
        # per-network coefficients in float64, (E,)
        if self.kind == "adam":
            b1, b2 = self.betas
            t = self.step_count.clamp_min(1)
            coef = {"w1": (1 - b1) * on, "decay2": torch.where(active, torch.full_like(on, b2), 1.0),
                    "bc2_sqrt": torch.sqrt(1 - b2 ** t), "neg_step": -(lr_scale * self.lr / (1 - b1 ** t)) * on}
        elif self.kind == "rmsprop":
            coef = {"decay": torch.where(active, torch.full_like(on, self.alpha), 1.0),
                    "mom": torch.where(active, self.momentum, 1.0), "neg_lr": -lr_scale * self.lr * on}
        else:
            first = self.step_count == 1
            coef = {"mom": torch.where(active, torch.where(first, 0.0, self.momentum), 1.0),
                    "neg_lr": -lr_scale * self.lr * on}
        cache: dict[tuple, torch.Tensor] = {}

        def c(name: str, p: torch.Tensor) -> torch.Tensor:
            key = (name, p.dtype, p.ndim)
            if key not in cache:
                cache[key] = _bcast(coef[name].to(p.dtype), p)
            return cache[key]

        # On the CPU reading the mask is free: when every network is active, skip masking.
        # (On a GPU that read would be a host sync; masking costs less.)
        masked = not (active.device.type == "cpu" and bool(active.all()))
        for p, st in zip(self.params, self.state):
            if p.grad is None:
                continue
            mask = _bcast(active, p)
            # a diverged network's gradient may be non-finite: zero it
            g = torch.where(mask, p.grad, 0) if masked else p.grad
            if self.kind == "adam":
                m = self._buffer(st, "exp_avg", p)
                v = self._buffer(st, "exp_avg_sq", p)
                m.lerp_(g, c("w1", p))
                v.mul_(c("decay2", p)).addcmul_(g, g, value=1 - self.betas[1])
                upd = torch.sqrt(v).div_(c("bc2_sqrt", p)).add_(self.eps)
                torch.div(m, upd, out=upd).mul_(c("neg_step", p))
            elif self.kind == "rmsprop":
                sq = self._buffer(st, "square_avg", p)
                buf = self._buffer(st, "momentum_buffer", p)
                sq.mul_(c("decay", p)).addcmul_(g, g, value=1 - self.alpha)
                avg = torch.sqrt(sq).add_(self.eps)
                buf.mul_(c("mom", p)).addcdiv_(g, avg)
                upd = torch.mul(buf, c("neg_lr", p), out=avg)
            else:
                buf = self._buffer(st, "momentum_buffer", p)
                buf.mul_(c("mom", p)).add_(g)
                upd = buf * c("neg_lr", p)
            p.add_(upd.masked_fill_(~mask, 0) if masked else upd)

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
