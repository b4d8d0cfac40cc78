"""privrec.runtime: the on-device reference runtime.

Bundle loading, scoring, fine-tuning, the local store and rounds over HTTP.
"""

from .recommender import BACKENDS, Backend, Recommender

__all__ = ["BACKENDS", "Backend", "Recommender"]
