"""The Flower ClientApp: one device running privrec's one device path, behind Flower's ``secaggplus_mod``.

Each SuperNode (a virtual one in simulation) is one device holding one user's history (:mod:`.partition`,
``node_config["partition-id"]``). In a round it

1. receives the :class:`~.wire.TrainInstruction` (the round's parameters, the model, the recipe);
2. runs :func:`privrec.sdk.federated.device_update` — reconstruction of its user vector with the recipe
   through the ``finetune`` signature, the gradient through the ``score`` signature, clipping and (in
   distributed-DP mode) its noise share from the secure generator — on
   :class:`~privrec.sdk.federated.NumpySignatures` of the model the server sent;
3. answers with :func:`~privrec.sdk.federated.aggregation_input` (the clipped update, then the
   adaptive-clipping count report), which ``secaggplus_mod`` (Bell et al. 2020) quantises and masks before
   it leaves the process. The user vector and the history never leave it.

Message types: ``train`` runs through SecAgg+ (``secaggplus_mod`` answers the protocol's setup, share-keys
and unmask stages itself and calls the handler in its collect-masked-vectors stage); ``train.plain`` is
the same handler without secure aggregation (the server warned about it); ``query.partition`` returns the
node's ``partition-id``, so a server can sample cohorts in the order the in-process simulation does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from privrec.sdk.recipe import ReconstructionRecipe

    from .wire import DeviceContribution, TrainInstruction

# privrec's device path is imported in the handlers that use it: on Flower's deployment engine every message
# starts a fresh ClientApp process, and most of a round's messages are SecAgg+ stages `secaggplus_mod`
# answers alone (the data and the model code would only slow their start).

__all__ = ["PARTITION_QUERY", "PLAIN_TRAIN", "app", "contribute"]

#: Message type of a round without secure aggregation (``secaggplus_mod`` passes it through untouched).
PLAIN_TRAIN = "train.plain"
#: Message type asking a node for its ``partition-id``.
PARTITION_QUERY = "query.partition"


def _partition_id(context: Context) -> int:
    value = context.node_config.get("partition-id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"node config `partition-id` must be an int. Found {value!r}.")
    return value


def contribute(
    instruction: TrainInstruction, labels_of: Callable[[ReconstructionRecipe], NDArray[np.float32]]
) -> DeviceContribution:
    """Steps 2–3 of the module docstring for a device whose labels are ``labels_of(recipe)``."""
    from privrec.sdk.federated import NumpySignatures, aggregation_input, device_update
    from privrec.sdk.privacy import SecureGaussianNoise

    from .wire import DeviceContribution

    layout = instruction.layout()
    model = NumpySignatures(layout.item_model(instruction.params), steps=instruction.recipe.steps)
    config = instruction.round.round_config()
    noise = SecureGaussianNoise() if config.noise_std > 0 or config.count_noise_std > 0 else None
    labels = labels_of(instruction.recipe)
    update = device_update(model, labels, recipe=instruction.recipe, layout=layout, config=config, noise=noise)
    return DeviceContribution(aggregation_input(update, adaptive=instruction.round.adaptive))


def _train(msg: Message, context: Context) -> Message:
    from flwr.compat.common import recorddict_compat as compat

    from .partition import load_population
    from .settings import DataSettings
    from .wire import TrainInstruction

    population = load_population(DataSettings.from_run_config(context.run_config))
    history = population.history(_partition_id(context))
    instruction = TrainInstruction.from_fitins(compat.recorddict_to_fitins(msg.content, keep_input=True))
    contribution = contribute(instruction, lambda recipe: recipe.labels(history, instruction.num_items))
    return Message(compat.fitres_to_recorddict(contribution.to_fitres(), keep_input=False), reply_to=msg)


app = ClientApp(mods=[secaggplus_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    """A round through SecAgg+ (``secaggplus_mod`` calls this in its collect-masked-vectors stage)."""
    return _train(msg, context)


@app.train("plain")
def train_plain(msg: Message, context: Context) -> Message:
    """A round without secure aggregation: the server sees this device's clipped update."""
    return _train(msg, context)


@app.query("partition")
def partition(msg: Message, context: Context) -> Message:
    """This node's ``partition-id`` (simulation metadata, not user data)."""
    return Message(RecordDict({"partition": ConfigRecord({"partition-id": _partition_id(context)})}), reply_to=msg)
