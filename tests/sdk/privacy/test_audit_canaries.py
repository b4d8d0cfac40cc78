"""The canary audit end to end on seeded synthetic data: a sound mechanism is never caught above its stated ε,
a mechanism with its noise cut 10× (still claiming the full noise's ε) is caught, and DP off leaks clearly."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from numpy.typing import NDArray

from privrec.sdk.data import LeaveOneOutSplit, heldout_users
from privrec.sdk.federated import FederatedConfig
from privrec.sdk.privacy import (
    AuditConfig,
    CanaryAudit,
    PrivacyWarning,
    SeededGaussianNoise,
    add_canaries,
    choose_canary_items,
    run_canary_audit,
)
from privrec.sdk.reconstruct import FinetuneConfig
from privrec.sdk.train import label_matrix

# Small and fast: 200 users (half of them held out as non-members), 100 canaries, 20 rounds at q = 0.5.
# δ = 1e-5 keeps the theorem's 2mδ term small; Z = 8 states ε ≈ 1.2 for these rounds.
Z = 8.0
CANARIES = 100


def _config(*, private: bool) -> FederatedConfig:
    dp = {"dp_mode": "central", "noise_multiplier": Z, "target_epsilon": None} if private else {
        "dp_mode": "off", "noise_multiplier": None, "target_epsilon": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        return FederatedConfig(rounds=20, sample_rate=0.5, clip_norm=0.5, local_lr=10.0, dim=8, delta=1e-5,
                               heldout_fraction=0.5, eval_every=20,
                               finetune=FinetuneConfig(steps=5, lr=0.1, l2=0.5, calls=4), **dp)  # type: ignore[arg-type]


class TenTimesLessNoise:
    """A deliberately broken mechanism: seeded Gaussian noise with 1/10 of the std it is asked for. The run's
    ledger still states the ε of the noise it asked for."""

    def __init__(self, seed: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrivacyWarning)
            self._inner = SeededGaussianNoise(seed=seed)

    @property
    def secure(self) -> bool:
        return False

    def normal(self, shape: int | tuple[int, ...], *, std: float) -> NDArray[np.float64]:
        return self._inner.normal(shape, std=std / 10.0)


def _audit(split: LeaveOneOutSplit, *, private: bool, broken: bool = False) -> CanaryAudit:
    cfg = _config(private=private)
    train, held = heldout_users(split.num_users, fraction=cfg.heldout_fraction, seed=0)
    return run_canary_audit(split, cfg, audit=AuditConfig(canaries=CANARIES), train_users=train, heldout_users=held,
                            seed=0, progress=False, noise=TenTimesLessNoise(0) if broken else None)


@pytest.fixture(scope="module")
def sound(synthetic_split: LeaveOneOutSplit) -> CanaryAudit:
    return _audit(synthetic_split, private=True)


def test_a_sound_mechanism_is_never_caught_above_its_stated_epsilon(sound: CanaryAudit) -> None:
    eps = sound.epsilon_upper
    assert math.isfinite(eps) and 0.5 < eps < 2.0  # the accountant's ε for Z = 8 over these rounds
    assert sound.lower_bound.epsilon_lower <= eps
    assert sound.lower_bound.delta == sound.run.ledger.delta == 1e-5
    assert sound.lower_bound.canaries == CANARIES and sound.lower_bound.confidence == 0.95
    # about half the canaries joined (a fair coin), and exactly those were training devices
    assert 30 < int(sound.included.sum()) < 70
    canary_users = np.arange(CANARIES) + 200  # appended after the 200 real users
    np.testing.assert_array_equal(np.isin(canary_users, sound.run.train_users), sound.included)


def test_a_mechanism_with_ten_times_less_noise_is_caught(synthetic_split: LeaveOneOutSplit,
                                                         sound: CanaryAudit) -> None:
    broken = _audit(synthetic_split, private=True, broken=True)
    claimed = broken.epsilon_upper
    assert claimed == sound.epsilon_upper  # the broken run claims the ε of the noise it asked for
    assert broken.lower_bound.epsilon_lower > claimed
    assert broken.canary_auc(broken.best) > 0.85


def test_dp_off_leaks_clearly(synthetic_split: LeaveOneOutSplit, sound: CanaryAudit) -> None:
    off = _audit(synthetic_split, private=False)
    assert math.isinf(off.epsilon_upper)
    assert off.lower_bound.epsilon_lower > 1.5 > sound.lower_bound.epsilon_lower
    for name in off.scores:
        assert off.canary_auc(name) > 0.95 > sound.canary_auc(name)
    # real users too: the loss-threshold attack beats guessing without DP, and is near chance with it
    assert off.membership["loss"].auc > 0.6
    assert abs(sound.membership["loss"].auc - 0.5) < 0.1
    summary = off.to_dict()
    assert summary["epsilon_upper"] is None and summary["mode"] == "off"
    assert summary["empirical_lower_bound"]["method"].startswith("one-run canaries (Steinke, Nasr & Jagielski 2023)")


def test_canaries_get_disjoint_rare_items(synthetic_split: LeaveOneOutSplit) -> None:
    train = np.arange(synthetic_split.num_users, dtype=np.int64)
    items = choose_canary_items(synthetic_split, train, canaries=20, items_per_canary=3)
    assert items.shape == (20, 3) and np.unique(items).size == 60
    counts = np.bincount(synthetic_split.train_items, minlength=synthetic_split.num_items)
    assert counts[items].max() <= np.sort(counts)[59]  # the 60 least popular items
    aug, users = add_canaries(synthetic_split, items)
    assert users.tolist() == list(range(synthetic_split.num_users, synthetic_split.num_users + 20))
    y = label_matrix(aug, None)
    assert y.shape == (synthetic_split.num_users + 20, synthetic_split.num_items)
    np.testing.assert_array_equal(np.flatnonzero(y[users[4]]), np.sort(items[4]))
    np.testing.assert_array_equal(y[: synthetic_split.num_users], label_matrix(synthetic_split, None))
    assert (aug.test_item[users] == -1).all() and (aug.val_item[users] == -1).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canaries": 1}, "`canaries` must be >= 2. Found 1."),
        ({"confidence": 1.0}, "`confidence` must be in (0, 1). Found 1.0."),
        ({"delta": 1.0}, "`delta` must be in [0, 1) or None. Found 1.0."),
    ],
)
def test_bad_audit_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        AuditConfig(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_more_canaries_than_items_is_refused(synthetic_split: LeaveOneOutSplit) -> None:
    train = np.arange(synthetic_split.num_users, dtype=np.int64)
    with pytest.raises(ValueError, match=r"^`canaries` × `items_per_canary` must be at most the 300 items. Found 400.$"):
        choose_canary_items(synthetic_split, train, canaries=200, items_per_canary=2)
