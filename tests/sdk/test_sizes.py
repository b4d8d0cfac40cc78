import numpy as np

from privrec.sdk.model import ItemModel
from privrec.sdk.prune import magnitude_prune
from privrec.sdk.quantize import quantize_int8
from privrec.sdk.sizes import parameter_bytes


def test_raw_sizes_are_exact() -> None:
    m = ItemModel(np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32), np.zeros(100, np.float32))
    assert parameter_bytes(m)["raw"] == 100 * 16 * 4 + 100 * 4
    assert parameter_bytes(quantize_int8(m))["raw"] == 100 * 16 + 100 * 4 + 100 * 4


def test_sparsity_shows_in_gzip() -> None:
    m = ItemModel(np.random.default_rng(0).normal(size=(500, 32)).astype(np.float32), np.zeros(500, np.float32))
    dense = parameter_bytes(quantize_int8(m))
    sparse = parameter_bytes(quantize_int8(magnitude_prune(m, 0.5)[0]))
    assert sparse["raw"] == dense["raw"]
    assert sparse["gzip"] < 0.8 * dense["gzip"]
