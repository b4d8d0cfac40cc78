"""The founding document's API: validation, budget, secure aggregation, on-device recommendations."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import privrec
from privrec.sdk.errors import PrivacyBudgetExceededError
from privrec.sdk.federated import FederatedClient, FederatedRecommendationSystem
from privrec.sdk.privacy import compute_epsilon_rdp


def _system(**kw: object) -> FederatedRecommendationSystem:
    args: dict[str, object] = dict(num_items=60, embedding_dim=4, epsilon=2.0, num_clients=10, max_rounds=3)
    return FederatedRecommendationSystem(**(args | kw))  # type: ignore[arg-type]


def _populate(fed: FederatedRecommendationSystem, n: int = 6) -> list[FederatedClient]:
    rng = np.random.default_rng(0)
    clients = []
    for i in range(n):
        c = fed.register_client(f"d{i}")
        for item in rng.choice(fed.num_items, size=8, replace=False):
            c.add_interaction(int(item), float(rng.uniform(0.5, 1.0)))
        clients.append(c)
    return clients


def test_lazy_top_level_import() -> None:
    assert privrec.FederatedRecommendationSystem is FederatedRecommendationSystem
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        privrec.Nope  # noqa: B018


def test_rounds_spend_exactly_what_the_accountant_says_and_stop_at_the_budget() -> None:
    fed = _system()
    clients = _populate(fed)
    ids = [c.client_id for c in clients]
    before = fed.item_model.item_bias.copy()
    for r in range(1, 4):
        summary = fed.federated_round(ids[:4])
        assert summary.round == r and summary.participants == 4 and summary.secure_aggregation
        expected = compute_epsilon_rdp(noise_multiplier=fed.noise_multiplier, sample_rate=1.0, rounds=r, delta=fed.delta)
        assert summary.epsilon == pytest.approx(expected, rel=1e-12)
    assert not np.array_equal(before, fed.item_model.item_bias)
    assert fed.privacy_spent().epsilon <= 2.0
    assert fed.privacy_spent().epsilon > 1.9  # the calibration uses the budget, it does not waste it
    with pytest.raises(PrivacyBudgetExceededError, match=re.escape("round 4 would take ε past the budget 2.0")):
        fed.federated_round(ids[:4])
    assert fed.rounds == 3
    ledger = fed.ledger()
    assert ledger.rounds == 3 and ledger.mode == "distributed"
    assert [e.sample_rate for e in ledger.entries] == [1.0]


def test_secure_aggregation_sum_matches_the_clear_sum() -> None:
    """With the same seeded noise, the SecAgg round and the in-the-clear round give the same model."""
    models = []
    for secagg in (True, False):
        fed = _system(secure_noise=False, seed=3, secure_aggregation=secagg, epsilon=50.0)
        ids = [c.client_id for c in _populate(fed)]
        fed.federated_round(ids)
        models.append(fed.item_model)
    np.testing.assert_allclose(models[0].item_embedding, models[1].item_embedding, atol=1e-4)
    np.testing.assert_allclose(models[0].item_bias, models[1].item_bias, atol=1e-4)


def test_recommendations_exclude_seen_items_and_are_deterministic() -> None:
    fed = _system()
    clients = _populate(fed)
    fed.federated_round([c.client_id for c in clients])
    recs = clients[0].get_recommendations(top_k=10)
    assert len(recs) == 10 and len(set(recs)) == 10
    seen = set(clients[0]._ratings)
    assert not seen & set(recs)
    assert recs == clients[0].get_recommendations(top_k=10)
    empty = fed.register_client("new")
    assert len(empty.get_recommendations(top_k=5)) == 5


def test_bad_input_is_refused() -> None:
    fed = _system()
    c = fed.register_client("a")
    fed.register_client("b")
    with pytest.raises(ValueError, match=r"`item_id` must be in \[0, 60\). Found 60."):
        c.add_interaction(60, 1.0)
    with pytest.raises(ValueError, match=r"`item_id` must be in \[0, 60\). Found -1."):
        c.add_interaction(-1, 1.0)
    with pytest.raises(TypeError, match=re.escape("`item_id` must be an int. Found float.")):
        c.add_interaction(1.5, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("`rating` must be a finite float in [0, 3.4e+38]. Found nan.")):
        c.add_interaction(1, math.nan)
    with pytest.raises(ValueError, match=re.escape("`rating` must be a finite float in [0, 3.4e+38]. Found -0.5.")):
        c.add_interaction(1, -0.5)
    # The attack: one huge rating used to overflow to inf on the device and break the whole cohort's round.
    with pytest.raises(ValueError, match=re.escape("`rating` must be a finite float in [0, 3.4e+38]. Found 1e+308.")):
        c.add_interaction(1, 1e308)
    assert c.num_interactions == 0
    with pytest.raises(ValueError, match="already registered"):
        fed.register_client("a")
    with pytest.raises(ValueError, match=re.escape("`client_ids` must be registered clients. Found 'zz' at position 1.")):
        fed.federated_round(["a", "zz"])
    with pytest.raises(ValueError, match=re.escape("`client_ids` must be distinct. Found 'a' twice.")):
        fed.federated_round(["a", "a"])
    with pytest.raises(ValueError, match=re.escape("secure aggregation needs at least 2 participants. Found 1.")):
        fed.federated_round(["a"])
    with pytest.raises(ValueError, match=r"`epsilon` must be in \(0, inf\). Found 0."):
        _system(epsilon=0)
    with pytest.raises(ValueError, match=r"`delta` must be in \(0, 1\). Found 1.5."):
        _system(delta=1.5)
    with pytest.raises(ValueError, match=re.escape("`num_items` must be > 0. Found 0.")):
        _system(num_items=0)
