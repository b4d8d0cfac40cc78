"""privrec.sdk.data: MovieLens fetching and loading, the interaction log, splits, synthetic data."""

from .fetch import data_dir, fetch_movielens100k, movielens100k_dir, sha256_file
from .interactions import Interactions
from .movielens import load_movielens1m, load_movielens100k
from .splits import LeaveOneOutSplit, heldout_users, leave_one_out, training_histories
from .synthetic import synthetic_interactions

__all__ = [
    "Interactions",
    "LeaveOneOutSplit",
    "data_dir",
    "fetch_movielens100k",
    "heldout_users",
    "leave_one_out",
    "load_movielens1m",
    "load_movielens100k",
    "movielens100k_dir",
    "sha256_file",
    "synthetic_interactions",
    "training_histories",
]
