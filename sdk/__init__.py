"""privrec.sdk: data, the compact recommender, training, reconstruction, compression, evaluation,
privacy and secure aggregation."""

from .errors import DataIntegrityError, PrivacyBudgetExceededError, PrivrecError
from .model import ItemModel, TrainedModel
from .quantize import Int4ItemModel, QuantizedItemModel, quantize_int4, quantize_int8
from .reconstruct import FinetuneConfig, finetune_reference, reconstruct, reconstruct_batch

__all__ = [
    "DataIntegrityError",
    "FinetuneConfig",
    "Int4ItemModel",
    "ItemModel",
    "PrivacyBudgetExceededError",
    "PrivrecError",
    "QuantizedItemModel",
    "TrainedModel",
    "finetune_reference",
    "quantize_int4",
    "quantize_int8",
    "reconstruct",
    "reconstruct_batch",
]
