"""The shared constants of the int8 recommend threshold: rounded up to float32, never below the float64 value."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from privrec.export.scan_bound import bias_max, round_up_f32, row_l1_max


@given(st.floats(0.0, 1e30, allow_nan=False))
def test_round_up_is_the_smallest_float32_not_below(value: float) -> None:
    up = round_up_f32(value)
    assert np.float32(up) == up and up >= value
    assert float(np.nextafter(np.float32(up), np.float32(-np.inf))) < value or up == value


def test_row_l1_max_and_bias_max_golden() -> None:
    q = np.array([[1, -2, 3], [-127, 0, 1], [0, 0, 0]], np.int8)
    scale = np.array([0.5, 0.01, 7.0], np.float32)
    assert row_l1_max(q, scale) == 3.0  # rows: 6 * 0.5 = 3, 128 * 0.01 = 1.28, 0
    assert row_l1_max(np.zeros((0, 4), np.int8), np.zeros(0, np.float32)) == 0.0
    assert bias_max(np.array([0.25, -1.5, 1.0], np.float32)) == 1.5
    assert bias_max(np.zeros(0, np.float32)) == 0.0
