"""Server optimizers that apply the averaged (noised) update Δ̄ to the global parameters.

Δ̄ is already a descent direction (each device sends ``−η_local ·`` its gradient), so the server treats
``−Δ̄`` as a pseudo-gradient (Reddi et al. 2021, "Adaptive Federated Optimization", §2):

* :class:`FedAvgM` — ``m ← μ·m + Δ̄``, ``x ← x + η_s·m`` (FedAvg with server learning rate and
  momentum; μ = 0 is plain FedAvg).
* :class:`FedAdam` — Reddi et al. 2021, Alg. 2: ``m ← β₁m + (1−β₁)Δ̄``, ``v ← β₂v + (1−β₂)Δ̄²``,
  ``x ← x + η_s·m / (sqrt(v) + τ)`` (no bias correction, as in the paper; τ sets the adaptivity).

Both are post-processing of the DP release, so they cost no privacy.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from ..privacy._validate import check_nonnegative, check_positive

__all__ = ["FedAdam", "FedAvgM", "ServerOptimizer", "make_server_optimizer"]


class ServerOptimizer(Protocol):
    """Applies one averaged update to the flat global parameters (in place)."""

    def step(self, params: NDArray[np.float32], update: NDArray[np.float64]) -> None:
        """``params ← params + f(update)`` for this optimizer's rule ``f``."""
        ...


def _check_beta(value: float, name: str) -> float:
    v = check_nonnegative(value, name)
    if v >= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1). Found {value}.")
    return v


class FedAvgM:
    """FedAvg with server learning rate ``lr`` and momentum ``momentum`` in [0, 1)."""

    def __init__(self, *, lr: float, momentum: float = 0.0) -> None:
        self.lr = check_positive(lr, "server_lr")
        self.momentum = _check_beta(momentum, "server_momentum")
        self._m: NDArray[np.float64] | None = None

    def step(self, params: NDArray[np.float32], update: NDArray[np.float64]) -> None:
        """``m ← μ·m + Δ̄``; ``x ← x + η_s·m``."""
        m = update.copy() if self._m is None else self.momentum * self._m + update
        self._m = m
        params += (self.lr * m).astype(np.float32)


class FedAdam:
    """FedAdam of Reddi et al. 2021, Alg. 2 (server lr η_s, β₁, β₂, adaptivity τ)."""

    def __init__(self, *, lr: float, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3) -> None:
        self.lr = check_positive(lr, "server_lr")
        self.beta1 = _check_beta(beta1, "beta1")
        self.beta2 = _check_beta(beta2, "beta2")
        self.tau = check_positive(tau, "tau")
        self._m: NDArray[np.float64] | None = None
        self._v: NDArray[np.float64] | None = None

    def step(self, params: NDArray[np.float32], update: NDArray[np.float64]) -> None:
        """One FedAdam step (Alg. 2, lines 12–14)."""
        if self._m is None or self._v is None:
            self._m = np.zeros_like(update)
            self._v = np.full_like(update, self.tau**2)  # v_{-1} ≥ τ² (Alg. 2 initialisation)
        self._m = self.beta1 * self._m + (1.0 - self.beta1) * update
        self._v = self.beta2 * self._v + (1.0 - self.beta2) * update * update
        params += (self.lr * self._m / (np.sqrt(self._v) + self.tau)).astype(np.float32)


def make_server_optimizer(
    name: Literal["fedavg", "fedadam"],
    *,
    lr: float,
    momentum: float = 0.0,
    beta1: float = 0.9,
    beta2: float = 0.99,
    tau: float = 1e-3,
) -> ServerOptimizer:
    """The optimizer called ``name`` (``"fedavg"`` or ``"fedadam"``)."""
    if name == "fedavg":
        return FedAvgM(lr=lr, momentum=momentum)
    if name == "fedadam":
        return FedAdam(lr=lr, beta1=beta1, beta2=beta2, tau=tau)
    raise ValueError(f"`server_optimizer` must be 'fedavg' or 'fedadam'. Found {name!r}.")
