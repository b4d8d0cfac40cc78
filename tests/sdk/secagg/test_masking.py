"""Pairwise masks cancel between two clients; the self mask is the seed's PRG output."""

from __future__ import annotations

import numpy as np

from privrec.sdk.secagg import crypto
from privrec.sdk.secagg.masking import add_pairwise_mask, self_mask


def test_pairwise_masks_cancel_and_can_be_removed() -> None:
    a_sk, a_pk = crypto.generate_key_pair()
    b_sk, b_pk = crypto.generate_key_pair()
    acc = np.zeros(257, dtype=np.uint32)
    add_pairwise_mask(acc, private=a_sk, peer_public=b_pk, round_id="r", u=3, v=9)
    assert np.count_nonzero(acc) > 250  # a real mask was added
    only_a = acc.copy()
    add_pairwise_mask(acc, private=b_sk, peer_public=a_pk, round_id="r", u=9, v=3)
    np.testing.assert_array_equal(acc, 0)
    # The server, knowing b's key (a dropped client), removes the mask a added: sign = -1.
    add_pairwise_mask(only_a, private=b_sk, peer_public=a_pk, round_id="r", u=3, v=9, sign=-1)
    np.testing.assert_array_equal(only_a, 0)


def test_masks_depend_on_round() -> None:
    a_sk, _ = crypto.generate_key_pair()
    _, b_pk = crypto.generate_key_pair()
    x, y = np.zeros(16, dtype=np.uint32), np.zeros(16, dtype=np.uint32)
    add_pairwise_mask(x, private=a_sk, peer_public=b_pk, round_id="r1", u=1, v=2)
    add_pairwise_mask(y, private=a_sk, peer_public=b_pk, round_id="r2", u=1, v=2)
    assert not np.array_equal(x, y)


def test_self_mask_is_deterministic_per_seed_round_and_client() -> None:
    seed = b"\x01" * 32
    m = self_mask(seed, round_id="r", client_id=4, length=100)
    np.testing.assert_array_equal(m, self_mask(seed, round_id="r", client_id=4, length=100))
    assert not np.array_equal(m, self_mask(seed, round_id="r", client_id=5, length=100))
    assert not np.array_equal(m, self_mask(seed, round_id="q", client_id=4, length=100))
