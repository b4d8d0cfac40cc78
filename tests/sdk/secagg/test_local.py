"""End-to-end rounds through simulate_round: exact sums under dropout (full mesh and SecAgg+), clean
aborts below threshold, masked vectors indistinguishable from uniform, and the statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from privrec.sdk.secagg import (
    FixedPointEncoder,
    SecAggAbortedError,
    SecAggClient,
    Stage,
)
from privrec.sdk.secagg.local import simulate_round

from .roundkit import make_config, run_round

N, D, CLIP = 20, 300, 1.0
# Full mesh: t = 11 > n/2. SecAgg+: k = 12 (closed neighbourhoods of 13), t = 7 > 13/2; dropping 30%
# of 20 clients (6) leaves >= 7 in every neighbourhood, so these rounds must succeed for any seed.
MESHES = {"full": {"threshold": 11, "neighbours": None}, "secagg+": {"threshold": 7, "neighbours": 12}}


def _vectors(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.2 * CLIP, 1.2 * CLIP, size=(N, D)).astype(np.float32)


def _check_exact(x: np.ndarray, total: np.ndarray, stats: object) -> None:
    enc = FixedPointEncoder(clip_range=CLIP, max_clients=N)
    rows = [u - 1 for u in stats.survivors]  # type: ignore[attr-defined]
    expected = np.sum(enc.encode(x[rows]), axis=0, dtype=np.uint32)  # numpy's mod-2^32 sum
    np.testing.assert_array_equal(stats.encoded_sum, expected)  # type: ignore[attr-defined]
    clipped_sum = np.clip(x[rows].astype(np.float64), -CLIP, CLIP).sum(axis=0)
    assert np.abs(total - clipped_sum).max() <= enc.error_bound(len(rows))


CASES = [("none", 0.0)] + [(stage, f) for stage in Stage.RUN for f in (0.1, 0.3)]


@pytest.mark.parametrize("mesh", list(MESHES))
@pytest.mark.parametrize(("stage", "fraction"), CASES)
def test_sum_is_exact_under_dropout(mesh: str, stage: str, fraction: float) -> None:
    x = _vectors(seed=7)
    dropout = {} if stage == "none" else {stage: fraction}
    total, st = simulate_round(x, clip_range=CLIP, seed=3, dropout=dropout, **MESHES[mesh])  # type: ignore[arg-type]
    dropped = round(fraction * N)
    assert len(st.survivors) == (N if stage in ("none", Stage.UNMASKING) else N - dropped)
    _check_exact(x, total, st)


# 10% at every stage removes 7 of 20 clients in all: SecAgg+ needs closed neighbourhoods of 15 (k = 14)
# and t = 8 so that every neighbourhood keeps >= t whichever 7 drop.
COMPOUND = {"full": {"threshold": 11, "neighbours": None}, "secagg+": {"threshold": 8, "neighbours": 14}}


@pytest.mark.parametrize("mesh", list(COMPOUND))
def test_sum_is_exact_with_dropout_at_every_stage(mesh: str) -> None:
    x = _vectors(seed=11)
    dropout = dict.fromkeys(Stage.RUN, 0.1)
    total, st = simulate_round(
        x,
        clip_range=CLIP,
        seed=5,
        dropout=dropout,
        restart_between_stages=True,
        **COMPOUND[mesh],  # type: ignore[arg-type]
    )
    assert st.stage_counts == {
        Stage.ADVERTISE_KEYS: 18,
        Stage.SHARE_KEYS: 16,
        Stage.MASKED_INPUT_COLLECTION: 14,
        Stage.UNMASKING: 13,
    }
    assert len(st.survivors) == 14
    _check_exact(x, total, st)


@pytest.mark.parametrize("stage", Stage.RUN)
def test_below_threshold_aborts(stage: str) -> None:
    """Full mesh, t = 15 of 20: losing 30% (6 clients) at any stage leaves 14 < 15."""
    with pytest.raises(SecAggAbortedError, match=r"fewer than the\s+threshold t = 15"):
        simulate_round(_vectors(1), threshold=15, clip_range=CLIP, seed=0, dropout={stage: 0.3})


def test_statistics_are_reported() -> None:
    _, st = simulate_round(_vectors(2), threshold=11, clip_range=CLIP, seed=0)
    assert st.frac_bits == 26  # n = 20, R = 1
    assert set(st.client_seconds_median) == set(Stage.RUN)
    assert st.server_seconds > 0 and st.client_seconds_total_median > 0
    # Each client sends at least its masked vector (D words as base64 in JSON).
    assert st.bytes_sent_median >= 4 * D * 4 / 3
    assert st.bytes_received_median > 0
    assert st.to_dict()["survivors"] == N


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match=r"`dropout` keys must be in"):
        simulate_round(_vectors(0), threshold=11, clip_range=CLIP, seed=0, dropout={"consistency_check": 0.1})
    with pytest.raises(ValueError, match=r"must be a fraction in \[0, 1\)"):
        simulate_round(_vectors(0), threshold=11, clip_range=CLIP, seed=0, dropout={Stage.SHARE_KEYS: 1.0})
    with pytest.raises(TypeError, match="2-D float"):
        simulate_round(np.zeros(3), threshold=1, clip_range=CLIP, seed=0)


# False-alarm rate: each p-value test below rejects a truly uniform vector with probability
# ALPHA = 1e-6, so a correct implementation fails this module spuriously about once in 250,000 runs.
ALPHA = 1e-6


def _uniformity_p_values(words: np.ndarray) -> tuple[float, float]:
    """Chi-square p-values of (a) byte frequencies over 256 bins, (b) set-bit counts per bit position."""
    counts = np.bincount(words.astype("<u4").view(np.uint8), minlength=256)
    p_bytes = float(scipy_stats.chisquare(counts).pvalue)
    bits = ((words[:, None] >> np.arange(32, dtype=np.uint32)) & 1).sum(axis=0)
    n = words.shape[0]
    chi2 = float((((bits - n / 2) ** 2) / (n / 4)).sum())
    p_bits = float(scipy_stats.chi2.sf(chi2, df=32))
    return p_bytes, p_bits


@pytest.mark.parametrize("k", [None, 3])
def test_masked_vector_is_indistinguishable_from_uniform(k: int | None) -> None:
    """Two very different, very non-uniform plaintexts (all zeros; all equal to the encoding of +R) both
    mask to vectors whose byte and bit statistics pass uniformity tests; the plaintexts themselves fail."""
    d = 4096
    rec = run_round(make_config(6, d, 4 if k is None else 3, k=k), stop_after=Stage.MASKED_INPUT_COLLECTION)
    enc = FixedPointEncoder(clip_range=CLIP, max_clients=6)
    plaintexts = {1: np.zeros(d, dtype=np.uint32), 2: enc.encode(np.full(d, CLIP))}
    for u, x in plaintexts.items():
        client: SecAggClient = rec.clients[u]
        masked = client.mask_input(rec.server.share_routing(u), x).values
        assert min(_uniformity_p_values(masked)) > ALPHA
        assert max(_uniformity_p_values(x)) < ALPHA  # the test can fail: it rejects the plaintext
        # masked − plaintext (the mask alone) is uniform too
        assert min(_uniformity_p_values(masked - x)) > ALPHA
