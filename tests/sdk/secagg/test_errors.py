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
