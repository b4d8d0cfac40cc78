"""Partition = user: which user's interactions a virtual device (a Flower SuperNode) holds.

The data set is split as ``privrec train --mode federated`` splits it (leave-one-out, then
``federated.heldout-fraction`` of the users held out with ``federated.heldout-seed``); the **training
devices** are the training users with at least one training interaction, in user order — the devices
:func:`~privrec.sdk.federated.simulate.simulate_federated` runs. Partition ``p`` (the SuperNode's
``node_config["partition-id"]``) is training device ``p mod N``: with a population of N partitions each
device is one user; a population of 10,000 replicates MovieLens-100K's 849 training users about 11.8 times
(partition p and p + N hold the same history), a documented stand-in for a larger user base.

A device keeps only its own history (item ids, oldest first); its labels come from the reconstruction
recipe the server sends (:meth:`~privrec.sdk.recipe.ReconstructionRecipe.labels`), as on a phone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from privrec.sdk.data import Interactions, LeaveOneOutSplit, heldout_users, leave_one_out, training_histories

from .settings import DataSettings

__all__ = ["Population", "load_population"]


@dataclass(frozen=True, eq=False)
class Population:
    """The devices of a run and the users held out of it.

    Attributes:
        data: the interactions (its ``name`` and item catalog go into the RUN_DIR).
        split: the leave-one-out split.
        devices: training users with at least one training interaction (``int64[N]``, ascending).
        heldout: held-out users (evaluated by reconstruction only).
        size: the number of partitions (virtual devices), ≥ N.
    """

    data: Interactions
    split: LeaveOneOutSplit
    devices: NDArray[np.int64]
    heldout: NDArray[np.int64]
    size: int

    def user_of(self, partition_id: int) -> int:
        """The user partition ``partition_id`` holds; ``ValueError`` outside ``[0, size)``."""
        if isinstance(partition_id, bool) or not isinstance(partition_id, int | np.integer):
            raise TypeError(f"`partition-id` must be an int. Found {type(partition_id).__name__}.")
        if not 0 <= partition_id < self.size:
            raise ValueError(f"`partition-id` must be in [0, {self.size}). Found {partition_id}.")
        return int(self.devices[int(partition_id) % self.devices.size])

    def history(self, partition_id: int) -> NDArray[np.int64]:
        """The item ids the device of ``partition_id`` holds, oldest first."""
        return training_histories(self.split, np.asarray([self.user_of(partition_id)], np.int64))[0]


@functools.lru_cache(maxsize=4)
def load_population(data: DataSettings) -> Population:
    """The population of ``data`` split as ``privrec train --mode federated`` splits it (cached per process:
    a Flower simulation runs many virtual devices in one worker)."""
    if data.dataset == "ml-100k":
        from privrec.sdk.data import load_movielens100k

        interactions = load_movielens100k()
    else:
        from privrec.sdk.data import synthetic_interactions

        interactions = synthetic_interactions(data.synthetic_users, data.synthetic_items, rank=data.synthetic_rank,
                                              seed=data.synthetic_seed)
    split = leave_one_out(interactions)
    train, held = heldout_users(split.num_users, fraction=data.heldout_fraction, seed=data.heldout_seed)
    counts = np.bincount(split.train_users, minlength=split.num_users)
    devices = train[counts[train] > 0].astype(np.int64)
    if devices.size == 0:
        raise ValueError("no training user has a training interaction: there are no devices.")
    size = data.population or int(devices.size)
    return Population(data=interactions, split=split, devices=devices, heldout=held, size=size)
