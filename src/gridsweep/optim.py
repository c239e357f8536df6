"""Optimisers with per-network hyperparameters for stacked (E, ...) parameters.

``torch.optim`` applies one learning rate to a whole tensor; an ensemble of E networks
stored in one tensor needs one per network, and scaling gradients is no substitute for
Adam or RMSProp (their step is invariant to gradient scale). These optimisers follow
the update rules term by term, with ``lr`` and ``momentum`` as (E,) tensors,
per-network gradient-norm clipping, and an ``active`` mask that freezes networks that
diverged.

Three conventions (``training.optimizer_convention``; docs/science.md section 3) differ in
where epsilon sits, in the default constants and in what the momentum buffer holds.
With g the gradient, t the step, lr the (scheduled) learning rate:

Adam (beta1 0.9, beta2 0.999; m, v start at 0)
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    torch:        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), eps 1e-8
    keras, tf1:   p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
                  ("epsilon hat" of Kingma & Ba; keras eps 1e-7, tf1 eps 1e-8)
RMSProp (momentum mu per network; buffer b starts at 0)
    s = rho s + (1 - rho) g^2
    torch:  rho 0.99, s0 = 0;  b = mu b + g / (sqrt(s) + eps);   p -= lr b;  eps 1e-8
    keras:  rho 0.9,  s0 = 0;  mu = 0: p -= lr g / (sqrt(s) + eps);
                               mu > 0: b = mu b + lr g / sqrt(s + eps); p -= b;  eps 1e-7
    tf1:    rho 0.9,  s0 = 1;  b = mu b + lr g / sqrt(s + eps);  p -= b;  eps 1e-10
SGD (momentum mu; buffer b starts at 0)
    torch, tf1:  b = mu b + g;  p -= lr b
    keras:       b = mu b + lr g;  p -= b
With a constant learning rate the two buffer forms are the same; under a schedule the
keras / tf1 buffer keeps the rates of past steps.
Adagrad (no momentum; accumulator a starts at a0)
    a = a + g^2;  p -= lr g / (sqrt(a) + eps)
    torch:  a0 = 0,   eps 1e-10  (torch.optim.Adagrad with lr_decay 0, its default)
    keras:  a0 = 0.1, eps 1e-7   (tf.keras 2.8 Adagrad -> tf.raw_ops.ResourceApplyAdagradV2;
                                  NFL's trainer.py:45-46)
    tf1:    a0 = 0.1, eps 0      (tf.train.AdagradOptimizer -> ApplyAdagrad: g / sqrt(a))
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch

from gridsweep.errors import ConfigError

__all__ = ["EnsembleOptimizer", "clip_grad_norm_per_network", "CONVENTIONS", "optimizer_settings"]

#: convention -> its default constants (torch.optim; tf.keras 2.8 optimizer_v2, which NFL
#: used; tf.train, which Banino et al. used).
CONVENTIONS: dict[str, dict[str, float]] = {
    "torch": {"adam_epsilon": 1e-8, "rmsprop_decay": 0.99, "rmsprop_epsilon": 1e-8,
              "adagrad_initial_accumulator": 0.0, "adagrad_epsilon": 1e-10},
    "keras": {"adam_epsilon": 1e-7, "rmsprop_decay": 0.9, "rmsprop_epsilon": 1e-7,
              "adagrad_initial_accumulator": 0.1, "adagrad_epsilon": 1e-7},
    "tf1": {"adam_epsilon": 1e-8, "rmsprop_decay": 0.9, "rmsprop_epsilon": 1e-10,
            "adagrad_initial_accumulator": 0.1, "adagrad_epsilon": 0.0},
}


def optimizer_settings(cfg) -> dict:
    """Keyword arguments of :class:`EnsembleOptimizer` from a ``TrainingConfig``.

    The convention's constants, each replaced by the config's value when that is not None.
    """
    out: dict = {"convention": cfg.optimizer_convention}
    for name, default in CONVENTIONS[cfg.optimizer_convention].items():
        value = getattr(cfg, name)
        out[name] = default if value is None else float(value)
    return out


def _bcast(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, *([1] * (like.ndim - 1)))


def clip_grad_norm_per_network(params: Sequence[torch.Tensor], max_norm: torch.Tensor) -> torch.Tensor:
    """Scale each network's gradients so its global L2 norm is at most ``max_norm[e]``.

    Follows ``torch.nn.utils.clip_grad_norm_`` (coefficient max_norm / (norm + 1e-6),
    clamped at 1) separately for every network. Returns the (E,) norms before clipping.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        raise ConfigError("clip_grad_norm_per_network: no parameter has a gradient (call backward() first)")
    sq = grads[0].pow(2).reshape(grads[0].shape[0], -1).sum(-1)
    for g in grads[1:]:  # left to right, as sum() adds
        sq = sq + g.pow(2).reshape(g.shape[0], -1).sum(-1)
    norms = torch.sqrt(sq)
    coef = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
    for g in grads:
        g.mul_(_bcast(coef, g))
    return norms


def clip_grad_value_per_network(params: Sequence[torch.Tensor], clip_value: torch.Tensor) -> None:
    """Clip every gradient element of network e to ``[-clip_value[e], clip_value[e]]``, in place.

    Notes
    -----
    Element-wise clipping as ``tf.clip_by_value`` applied to each gradient, which is how
    Banino et al. (2018) clip (their ``train.py``); an infinite ``clip_value[e]`` leaves
    network e unchanged.
    """
    for p in params:
        if p.grad is not None:
            c = _bcast(clip_value, p.grad).to(p.grad.dtype)
            torch.minimum(torch.maximum(p.grad, -c), c, out=p.grad)


class EnsembleOptimizer:
    """Adam, RMSProp, SGD or Adagrad over stacked parameters with (E,) hyperparameters.

    Parameters
    ----------
    params : sequence of Tensor, each (E, ...)
    kind : {"adam", "rmsprop", "sgd", "adagrad"}
    lr : Tensor, (E,)
    momentum : Tensor, (E,)  (RMSProp and SGD; ignored by Adam and Adagrad)
    betas : Adam's (beta1, beta2), (0.9, 0.999) in every convention
    convention : {"torch", "keras", "tf1"}
        Whose update rules to follow (module docstring).
    adam_epsilon, rmsprop_decay, rmsprop_epsilon, adagrad_initial_accumulator, adagrad_epsilon : float, optional
        None takes the convention's value from :data:`CONVENTIONS`.
    """

    def __init__(self, params: Sequence[torch.Tensor], kind: str, lr: torch.Tensor,
                 momentum: torch.Tensor | None = None, betas=(0.9, 0.999),
                 convention: Literal["torch", "keras", "tf1"] = "torch", adam_epsilon: float | None = None,
                 rmsprop_decay: float | None = None, rmsprop_epsilon: float | None = None,
                 adagrad_initial_accumulator: float | None = None, adagrad_epsilon: float | None = None):
        if convention not in CONVENTIONS:
            raise ValueError(f"training.optimizer_convention={convention!r}: allowed {sorted(CONVENTIONS)}")
        defaults = CONVENTIONS[convention]
        self.params = [p for p in params]
        self.kind = kind
        self.convention = convention
        self.lr = lr
        self.momentum = torch.zeros_like(lr) if momentum is None else momentum
        self.betas = betas
        self.adam_epsilon = defaults["adam_epsilon"] if adam_epsilon is None else float(adam_epsilon)
        self.rmsprop_decay = defaults["rmsprop_decay"] if rmsprop_decay is None else float(rmsprop_decay)
        self.rmsprop_epsilon = defaults["rmsprop_epsilon"] if rmsprop_epsilon is None else float(rmsprop_epsilon)
        self.adagrad_initial_accumulator = (defaults["adagrad_initial_accumulator"] if adagrad_initial_accumulator
                                            is None else float(adagrad_initial_accumulator))
        self.adagrad_epsilon = defaults["adagrad_epsilon"] if adagrad_epsilon is None else float(adagrad_epsilon)
        if kind == "adagrad" and self.adagrad_initial_accumulator <= 0 and self.adagrad_epsilon <= 0:
            raise ConfigError("training.adagrad_initial_accumulator=0 with adagrad_epsilon=0 divides 0 by 0 where a "
                              "gradient is 0; give one of them a positive value")
        E = lr.shape[0]
        self.step_count = torch.zeros(E, dtype=torch.float64, device=lr.device)
        self.state: list[dict[str, torch.Tensor]] = [dict() for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _buffer(self, st: dict[str, torch.Tensor], key: str, p: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        if key not in st:
            st[key] = torch.full_like(p, fill)
        return st[key]

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None, lr_scale: float = 1.0) -> None:
        """Update every active network; inactive ones (and their state) stay as they are.

        ``lr_scale`` multiplies every network's learning rate for this step (the
        schedule's factor, shared by the ensemble); the stored ``lr`` is not changed.

        In-place, allocation-light form of the convention's update rules (module
        docstring). Per-network coefficients are (E,) tensors, so nothing is read back
        from a GPU. An inactive network gets zero gradient, unit decay factors and a zero
        update, so its weights and state are left bit-for-bit unchanged.
        """
        E = self.lr.shape[0]
        if active is None:
            active = torch.ones(E, dtype=torch.bool, device=self.lr.device)
        if self.kind not in ("adam", "rmsprop", "sgd", "adagrad"):
            raise ValueError(f"training.optimizer={self.kind!r}: allowed adam, rmsprop, sgd, adagrad")
        self.step_count += active.to(self.step_count.dtype)
        on = active.to(torch.float64)
        torch_rule = self.convention == "torch"
        # per-network coefficients in float64, (E,)
        if self.kind == "adam":
            b1, b2 = self.betas
            t = self.step_count.clamp_min(1)
            coef = {"w1": (1 - b1) * on, "decay2": torch.where(active, torch.full_like(on, b2), 1.0)}
            if torch_rule:
                coef["bc2_sqrt"] = torch.sqrt(1 - b2 ** t)
                coef["neg_step"] = -(lr_scale * self.lr / (1 - b1 ** t)) * on
            else:  # keras / tf1: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), eps on the uncorrected sqrt(v)
                coef["neg_step"] = -(lr_scale * self.lr * torch.sqrt(1 - b2 ** t) / (1 - b1 ** t)) * on
        elif self.kind == "rmsprop":
            coef = {"decay": torch.where(active, torch.full_like(on, self.rmsprop_decay), 1.0),
                    "mom": torch.where(active, self.momentum, 1.0)}
            if torch_rule:
                coef["neg_lr"] = -lr_scale * self.lr * on
            else:  # lr inside the buffer; eps inside the sqrt (keras: only with momentum)
                eps = torch.full_like(on, self.rmsprop_epsilon)
                inside = self.momentum > 0 if self.convention == "keras" else torch.ones_like(active)
                coef["lr"] = lr_scale * self.lr * on
                coef["eps_in"] = torch.where(inside, eps, 0.0)
                coef["eps_out"] = torch.where(inside, 0.0, eps)
        elif self.kind == "adagrad":  # the same rule in every convention; only a0 and eps differ
            coef = {"neg_lr": -lr_scale * self.lr * on}
        else:
            first = self.step_count == 1
            coef = {"mom": torch.where(active, torch.where(first, 0.0, self.momentum), 1.0)}
            if self.convention == "keras":  # velocity v = mu v - lr g: lr inside the buffer
                coef["lr"] = lr_scale * self.lr * on
            else:
                coef["neg_lr"] = -lr_scale * self.lr * on
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
                upd = torch.sqrt(v)
                if torch_rule:
                    upd.div_(c("bc2_sqrt", p))
                upd.add_(self.adam_epsilon)
                torch.div(m, upd, out=upd).mul_(c("neg_step", p))
            elif self.kind == "rmsprop":
                # tf.train.RMSPropOptimizer starts the mean square at 1, the others at 0
                sq = self._buffer(st, "square_avg", p, 1.0 if self.convention == "tf1" else 0.0)
                buf = self._buffer(st, "momentum_buffer", p)
                sq.mul_(c("decay", p)).addcmul_(g, g, value=1 - self.rmsprop_decay)
                if torch_rule:
                    avg = torch.sqrt(sq).add_(self.rmsprop_epsilon)
                    buf.mul_(c("mom", p)).addcdiv_(g, avg)
                    upd = torch.mul(buf, c("neg_lr", p), out=avg)
                else:
                    avg = torch.add(sq, c("eps_in", p)).sqrt_().add_(c("eps_out", p))
                    torch.div(g, avg, out=avg).mul_(c("lr", p))
                    buf.mul_(c("mom", p)).add_(avg)
                    upd = torch.neg(buf, out=avg)
            elif self.kind == "adagrad":
                acc = self._buffer(st, "sum", p, self.adagrad_initial_accumulator)
                acc.addcmul_(g, g)  # an inactive network adds 0
                upd = torch.sqrt(acc).add_(self.adagrad_epsilon)
                torch.div(g, upd, out=upd).mul_(c("neg_lr", p))
            else:
                buf = self._buffer(st, "momentum_buffer", p)
                if self.convention == "keras":
                    buf.mul_(c("mom", p)).addcmul_(g, c("lr", p))
                    upd = torch.neg(buf)
                else:
                    buf.mul_(c("mom", p)).add_(g)
                    upd = buf * c("neg_lr", p)
            p.add_(upd.masked_fill_(~mask, 0) if masked else upd)

    # -- checkpointing ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"kind": self.kind, "convention": self.convention, "lr": self.lr.clone(),
                "momentum": self.momentum.clone(), "step_count": self.step_count.clone(),
                "state": [{k: v.clone() for k, v in st.items()} for st in self.state]}

    def load_state_dict(self, sd: dict) -> None:
        stored = sd.get("convention", "torch")  # checkpoints written before conventions existed: torch
        if stored != self.convention:
            raise ConfigError(f"training.optimizer_convention={self.convention!r}, but the checkpoint's optimiser "
                              f"state follows {stored!r}; resume with the convention it was trained with")
        self.lr = sd["lr"].to(self.lr.device)
        self.momentum = sd["momentum"].to(self.lr.device)
        self.step_count = sd["step_count"].to(self.lr.device)
        self.state = [{k: v.to(p.device) for k, v in st.items()} for st, p in zip(sd["state"], self.params)]

    def select_state(self, index: Sequence[int]) -> dict:
        """The state dict of networks ``index`` alone."""
        idx = list(index)
        return {"kind": self.kind, "convention": self.convention, "lr": self.lr[idx].clone(),
                "momentum": self.momentum[idx].clone(),
                "step_count": self.step_count[idx].clone(),
                "state": [{k: v[idx].clone() for k, v in st.items()} for st in self.state]}

    @staticmethod
    def stack_states(states: Sequence[dict]) -> dict:
        """Concatenate per-network state dicts (inverse of :meth:`select_state`)."""
        out = {"kind": states[0]["kind"], "convention": states[0].get("convention", "torch")}
        for k in ("lr", "momentum", "step_count"):
            out[k] = torch.cat([s[k] for s in states])
        out["state"] = []
        for i in range(len(states[0]["state"])):
            keys = set().union(*(s["state"][i].keys() for s in states))
            out["state"].append({k: torch.cat([s["state"][i][k] for s in states]) for k in keys})
        return out
