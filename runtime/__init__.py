"""privrec.runtime: the on-device reference runtime.

Bundle loading, scoring, fine-tuning, the local store and rounds over HTTP.
"""

from .client import ServerClient, ServerError
from .device import Device, RoundReport
from .recommender import BACKENDS, Backend, Recommender
from .store import EncryptedStore, StoreIntegrityError
from .topk import top_k

__all__ = [
    "BACKENDS",
    "Backend",
    "Device",
    "EncryptedStore",
    "Recommender",
    "RoundReport",
    "ServerClient",
    "ServerError",
    "StoreIntegrityError",
    "top_k",
]
