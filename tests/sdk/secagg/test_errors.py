"""The error hierarchy: every error is a PrivrecError and a builtin."""

from __future__ import annotations

import pytest

from privrec.sdk.errors import PrivrecError
from privrec.sdk.secagg import (
    SecAggAbortedError,
    SecAggError,
    SecAggIntegrityError,
    SecAggMessageError,
    SecAggStageError,
)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (SecAggAbortedError, RuntimeError),
        (SecAggStageError, RuntimeError),
        (SecAggMessageError, ValueError),
        (SecAggIntegrityError, ValueError),
    ],
)
def test_hierarchy(cls: type[Exception], builtin: type[Exception]) -> None:
    assert issubclass(cls, SecAggError)
    assert issubclass(cls, PrivrecError)
    assert issubclass(cls, builtin)


def test_culprits_name_the_misbehaving_devices() -> None:
    assert SecAggAbortedError("round over").culprits == ()
    error = SecAggAbortedError("clients 7 and 3 lied", culprits=[7, 3, 7])
    assert error.culprits == (3, 7) and str(error) == "clients 7 and 3 lied"
    assert SecAggMessageError("x", culprits=(5,)).culprits == (5,)
