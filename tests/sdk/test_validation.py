import numpy as np
import pytest

from privrec.sdk.validation import check_finite, check_item_ids, check_positive_int, check_probability, check_user_vector


def test_item_ids_out_of_range_names_value_and_position() -> None:
    with pytest.raises(ValueError, match=r"^`item_ids` must be in \[0, 1682\)\. Found 1700 at position 3\.$"):
        check_item_ids(np.array([0, 5, 9, 1700]), 1682)


def test_negative_item_id_rejected() -> None:
    with pytest.raises(ValueError, match=r"Found -1 at position 0"):
        check_item_ids([-1, 2], 10)


def test_float_ids_rejected_with_type_error() -> None:
    with pytest.raises(TypeError, match=r"integer dtype\. Found float32"):
        check_item_ids(np.array([1.0], np.float32), 10)
    with pytest.raises(TypeError, match="must contain integers"):
        check_item_ids([1, 2.5], 10)  # type: ignore[list-item]


def test_ids_must_be_1d() -> None:
    with pytest.raises(ValueError, match=r"must be 1-D. Found shape \(2, 2\)"):
        check_item_ids(np.zeros((2, 2), np.int64), 10)


def test_ids_roundtrip_int64() -> None:
    out = check_item_ids(np.array([3, 1], np.int32), 4)
    assert out.dtype == np.int64 and out.tolist() == [3, 1]


def test_nan_user_vector_rejected_with_position() -> None:
    u = np.zeros(4, np.float32)
    u[2] = np.nan
    with pytest.raises(ValueError, match=r"`user` must be finite\. Found nan at position 2\."):
        check_user_vector(u, 4)


def test_user_vector_shape_and_dtype() -> None:
    with pytest.raises(ValueError, match=r"shape \(4,\)\. Found \(3,\)"):
        check_user_vector(np.zeros(3, np.float32), 4)
    with pytest.raises(TypeError, match=r"float dtype\. Found int64"):
        check_user_vector(np.zeros(4, np.int64), 4)


def test_check_finite_reports_inf() -> None:
    a = np.ones((2, 3))
    a[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"Found inf at position \(1, 2\)"):
        check_finite(a, "w")


def test_positive_int_and_probability() -> None:
    assert check_positive_int(3, "dim") == 3
    with pytest.raises(ValueError, match=r"`dim` must be > 0\. Found 0\."):
        check_positive_int(0, "dim")
    with pytest.raises(TypeError):
        check_positive_int(True, "dim")
    assert check_probability(1.0, "q") == 1.0
    with pytest.raises(ValueError, match=r"`q` must be in \(0, 1\]. Found 1.3."):
        check_probability(1.3, "q")
