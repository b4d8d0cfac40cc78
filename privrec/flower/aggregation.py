"""One round's sum of the cohort's contributions, through Flower: SecAgg+ or (warned) in the clear.

:func:`secure_sum` runs Flower's ``SecAggPlusWorkflow`` unmodified (Bonawitz et al. 2017 with the SecAgg+
ring of Bell et al. 2020: X25519 key agreement, Shamir shares of the self-mask seed and of the masking key,
pairwise and self masks mod 2^32) against the devices' ``secaggplus_mod``. The workflow's public API
releases the survivors' *weighted mean* to a legacy ``Strategy``: every device has weight 1, so the mean
times the survivor count k is the sum secure aggregation revealed — what
:func:`~privrec.sdk.federated.round.finish_round` takes.

Flower's fixed-point encoding (``flwr.common.secure_aggregation.quantization``) maps ``[-R, R]`` onto
``[0, Q]`` with stochastic rounding, after clipping each coordinate to ±R; its sums wrap mod 2^32. So that
k devices' sum cannot wrap, Q is chosen per round as ``min(2^24, ⌊(2^32 − 1)/k⌋)`` (Flower's default
``2^22`` overflows above 1,024 devices). R is the round's :attr:`~privrec.sdk.federated.RoundSetup.clip_range`
(C, plus 9σ headroom for a distributed-DP noise share), so clipping to ±R never changes a clipped update.
The rounding error per coordinate of the sum is below ``k·2R/Q``.

A round whose SecAgg+ halts (fewer surviving neighbours than the threshold) releases nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common import Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.serde import message_to_proto
from flwr.compat.common import recorddict_compat as compat
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import Grid
from numpy.typing import NDArray

from .client_app import PLAIN_TRAIN
from .settings import SecAggSettings
from .wire import DeviceContribution, TrainInstruction

__all__ = ["Aggregate", "MeteredGrid", "PollingGrid", "plain_sum", "quantization_range", "secure_sum"]

_MODULUS = 2**32


def quantization_range(devices: int) -> int:
    """Q of Flower's encoding for a sum of ``devices`` inputs that cannot wrap mod 2^32 (module docstring)."""
    return min(2**24, (_MODULUS - 1) // max(devices, 1))


@dataclass(frozen=True)
class Aggregate:
    """What a round's aggregation revealed.

    Attributes:
        total: the sum of the survivors' contributions ``float64[L]``, or None when nothing was released.
        survivors: how many devices' contributions are in ``total``.
    """

    total: NDArray[np.float64] | None
    survivors: int


class _Cohort(Strategy):
    """The legacy ``Strategy`` the SecAgg+ workflow needs: a fixed cohort, one instruction, and the result kept."""

    def __init__(self, proxies: list[GridClientProxy], instruction: TrainInstruction) -> None:
        super().__init__()
        self.proxies, self.fitins = proxies, instruction.to_fitins()
        self.mean: NDArray[np.float64] | None = None
        self.survivors = 0

    def initialize_parameters(self, client_manager: Any) -> Parameters | None:
        return None

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: Any) -> list[tuple[Any, Any]]:
        return [(proxy, self.fitins) for proxy in self.proxies]

    def aggregate_fit(
        self, server_round: int, results: list[tuple[Any, Any]], failures: list[Any]
    ) -> tuple[None, dict[str, Any]]:
        if results:  # every result carries the same unmasked weighted mean
            self.mean = np.asarray(parameters_to_ndarrays(results[0][1].parameters)[0], np.float64)
            self.survivors = len(results)
        return None, {}

    def configure_evaluate(self, server_round: int, parameters: Parameters, client_manager: Any) -> list[tuple[Any, Any]]:
        return []

    def aggregate_evaluate(self, server_round: int, results: list[Any], failures: list[Any]) -> tuple[None, dict[str, Any]]:
        return None, {}

    def evaluate(self, server_round: int, parameters: Parameters) -> None:
        return None


def secure_sum(
    grid: Grid,
    context: Context,
    node_ids: Sequence[int],
    instruction: TrainInstruction,
    *,
    round_number: int,
    settings: SecAggSettings,
) -> Aggregate:
    """The sum of ``node_ids``' contributions through Flower's SecAgg+ (module docstring)."""
    k = len(node_ids)
    if k < 2:  # SecAgg+ needs two devices: one device's update alone is never released
        return Aggregate(None, 0)
    full_mesh = k <= settings.num_shares
    workflow = SecAggPlusWorkflow(
        num_shares=1.0 if full_mesh else settings.num_shares,
        reconstruction_threshold=min(settings.reconstruction_threshold, k),
        max_weight=1.0,
        clipping_range=instruction.round.clip_range,
        quantization_range=quantization_range(k),
        timeout=settings.timeout or None,
    )
    strategy = _Cohort([GridClientProxy(int(nid), grid, context.run_id) for nid in node_ids], instruction)
    state = RecordDict()
    state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({WorkflowKey.CURRENT_ROUND: round_number})
    state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(ndarrays_to_parameters([]), True)
    round_context = Context(run_id=context.run_id, node_id=context.node_id, node_config=context.node_config,
                            state=state, run_config=context.run_config)
    workflow(grid, LegacyContext(round_context, strategy=strategy))
    if strategy.mean is None:
        return Aggregate(None, 0)
    return Aggregate(strategy.mean * strategy.survivors, strategy.survivors)


def plain_sum(
    grid: Grid, node_ids: Sequence[int], instruction: TrainInstruction, *, round_number: int, timeout: float | None
) -> Aggregate:
    """The sum of ``node_ids``' contributions sent in the clear (no secure aggregation)."""
    content = compat.fitins_to_recorddict(instruction.to_fitins(), keep_input=True)
    messages = [Message(content, dst_node_id=int(nid), message_type=PLAIN_TRAIN, group_id=str(round_number))
                for nid in node_ids]
    length = instruction.round.vector_length(instruction.layout())
    total = np.zeros(length, np.float64)
    survivors = 0
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error():
            continue
        total += DeviceContribution.from_fitres(compat.recorddict_to_fitres(reply.content, keep_input=False),
                                                length=length).vector
        survivors += 1
    return Aggregate(total, survivors)


class PollingGrid:
    """A ``Grid`` whose :meth:`send_and_receive` asks for replies every ``interval`` seconds.

    Flower 1.42's deployment grid (the ServerApp talking to a SuperLink) pushes a batch of messages, then
    pulls the replies every 3 s; a SecAgg+ round is four such exchanges, so a small cohort's round spent most
    of its time asleep. (Every pull is an HTTP request the SuperLink serves: 0.5 s keeps that cheap.) The
    semantics are Flower's: push every message, then pull until every reply arrived
    or ``timeout`` seconds passed (None: wait), and return the replies. A message the SuperLink refused
    (Flower returns no id for it) gets no reply. Everything else is passed through to the wrapped grid.
    """

    def __init__(self, grid: Grid, *, interval: float = 0.5) -> None:
        self._grid, self.interval = grid, interval

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Push ``messages``, then pull their replies every ``interval`` seconds (class docstring)."""
        waiting = {mid for mid in self._grid.push_messages(list(messages)) if mid}
        give_up = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while waiting:
            arrived = list(self._grid.pull_messages(waiting))
            replies += arrived
            waiting -= {reply.metadata.reply_to_message_id for reply in arrived}
            if not waiting or (give_up is not None and time.monotonic() >= give_up):
                break
            time.sleep(self.interval)
        return replies


class MeteredGrid:
    """A ``Grid`` that records the serialised (protobuf) bytes of every message to and from each node.

    Wraps the ServerApp's grid; everything but :meth:`send_and_receive` is passed through.
    """

    def __init__(self, grid: Grid) -> None:
        self._grid = grid
        self.to_node: dict[int, int] = {}
        self.from_node: dict[int, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Count, delegate, count the replies."""
        batch = list(messages)
        for msg in batch:
            nid = msg.metadata.dst_node_id
            self.to_node[nid] = self.to_node.get(nid, 0) + message_to_proto(msg).ByteSize()
        replies = list(self._grid.send_and_receive(batch, timeout=timeout))
        for reply in replies:
            nid = reply.metadata.src_node_id
            self.from_node[nid] = self.from_node.get(nid, 0) + message_to_proto(reply).ByteSize()
        return replies

    def reset(self) -> tuple[dict[int, int], dict[int, int]]:
        """The byte counts since the last reset (to each node, from each node), then zero them."""
        counts = (self.to_node, self.from_node)
        self.to_node, self.from_node = {}, {}
        return counts
