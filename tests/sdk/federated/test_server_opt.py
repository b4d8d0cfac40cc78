"""Server optimizers: golden steps of FedAvg with momentum and FedAdam (Reddi et al. 2021, Alg. 2)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from privrec.sdk.federated import FedAdam, FedAvgM, make_server_optimizer


def test_fedavg_momentum_golden() -> None:
    x = np.zeros(2, np.float32)
    opt = FedAvgM(lr=0.5, momentum=0.9)
    opt.step(x, np.array([1.0, -2.0]))
    np.testing.assert_allclose(x, [0.5, -1.0])
    opt.step(x, np.array([1.0, 0.0]))  # m = 0.9*[1,-2] + [1,0] = [1.9, -1.8]
    np.testing.assert_allclose(x, [0.5 + 0.95, -1.0 - 0.9], rtol=1e-6)


def test_fedadam_golden() -> None:
    x = np.ones(2, np.float32)
    opt = FedAdam(lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    d = np.array([0.2, -0.4])
    opt.step(x, d)
    m = 0.1 * d
    v = 0.99 * 1e-6 + 0.01 * d * d
    np.testing.assert_allclose(x, 1.0 + 0.1 * m / (np.sqrt(v) + 1e-3), rtol=1e-6)


def test_factory_and_errors() -> None:
    assert isinstance(make_server_optimizer("fedavg", lr=1.0), FedAvgM)
    assert isinstance(make_server_optimizer("fedadam", lr=1.0), FedAdam)
    with pytest.raises(ValueError, match=re.escape("`server_optimizer` must be 'fedavg' or 'fedadam'. Found 'adam'.")):
        make_server_optimizer("adam", lr=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`server_lr` must be in \(0, inf\). Found 0."):
        FedAvgM(lr=0)
    with pytest.raises(ValueError, match=r"`beta2` must be in \[0, 1\). Found 1.0."):
        FedAdam(lr=1.0, beta2=1.0)
