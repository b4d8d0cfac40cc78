"""privrec.sdk.data: MovieLens fetching and loading, an app's own files (CSV, Parquet, JSON Lines), the
interaction log, splits, synthetic data."""

from .fetch import data_dir, fetch_movielens100k, movielens100k_dir, sha256_file
from .interactions import Interactions
from .loaders import (
    ColumnSpec,
    DataProblem,
    DataValidationError,
    ItemsSpec,
    LoadReport,
    detect_format,
    load_interactions,
    read_interactions,
)
from .movielens import load_movielens1m, load_movielens100k
from .population import PopulationChunk, PopulationModel, generate_users, iter_population, movielens100k_population
from .source import DataSource
from .splits import LeaveOneOutSplit, heldout_users, leave_one_out, training_histories
from .summary import DataSummary, summarize
from .synthetic import synthetic_interactions

__all__ = [
    "ColumnSpec",
    "DataProblem",
    "DataSource",
    "DataSummary",
    "DataValidationError",
    "Interactions",
    "ItemsSpec",
    "LeaveOneOutSplit",
    "LoadReport",
    "PopulationChunk",
    "PopulationModel",
    "data_dir",
    "detect_format",
    "fetch_movielens100k",
    "generate_users",
    "heldout_users",
    "iter_population",
    "leave_one_out",
    "load_interactions",
    "load_movielens1m",
    "load_movielens100k",
    "movielens100k_dir",
    "movielens100k_population",
    "read_interactions",
    "sha256_file",
    "summarize",
    "synthetic_interactions",
    "training_histories",
]
