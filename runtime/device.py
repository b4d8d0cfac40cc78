"""A device: its interactions in an encrypted store, a bundle it recommends and fine-tunes with, and its
part in federated rounds over HTTP.

Round participation (``Device.take_part``) follows the server's lead (:mod:`privrec.server_stub.rounds`):

1. **sampling** — the device joins with probability q drawn with :mod:`secrets` (Poisson sampling on the
   device, the q the accountant uses) and checks in;
2. **update** — with the round's model (the server's bundle of that version),
   :func:`privrec.sdk.federated.device.device_update` rebuilds the user vector with the bundle's
   reconstruction recipe through the exported ``finetune`` signature, scores the catalog with ``score``,
   computes the update in numpy, clips it to C and (distributed DP) adds its noise share, all as the
   round's :class:`~privrec.sdk.federated.wire.RoundParams` say; the result is encoded with the round's
   :class:`~privrec.sdk.secagg.FixedPointEncoder`;
3. **secure aggregation** — a :class:`~privrec.sdk.secagg.SecAggClient` answers each stage's server
   message (Bonawitz et al. 2017, Fig. 4). Its state (private keys, the self-mask seed, the encoded input)
   and the last outgoing message are kept in the encrypted store between stages, so a restarted device
   resumes (and resends an unacknowledged message), and are deleted when the round ends.

The user vector and the interactions never leave the device; only masked vectors, public keys and
encrypted or revealed Shamir shares do.

**History by item id.** The device stores its history as the app's own item ids (the manifest's item map,
docs/BUNDLE.md), never as rows of a bundle's table. Each bundle it installs maps the history onto its own
rows (:meth:`Device.mapped_history`): after a catalog update (a new bundle with items added, removed and
re-ordered) every surviving item keeps its place in the history, and items the new catalog lacks are left
out of reconstruction, updates and the seen-item filter (counted, and logged) while staying stored, so a
later catalog that brings one back finds it. A history written by an earlier privrec as rows is converted
to ids with the item map of the first bundle installed after the upgrade (the catalog those rows index).
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from privrec.export.errors import BundleError
from privrec.export.item_map import MappedHistory, check_history_ids, holds_item_ids
from privrec.export.signing import PublicKeySource
from privrec.sdk.federated.device import device_update
from privrec.sdk.federated.round import aggregation_input
from privrec.sdk.federated.wire import ENROLLING, DeviceAction, RoundParams, WireError
from privrec.sdk.privacy.noise import SecureGaussianNoise
from privrec.sdk.secagg import (
    KeyRoster,
    SecAggClient,
    SecAggConfig,
    SecAggError,
    ServerStage,
    ShareRouting,
    Stage,
    UnmaskingRequest,
)

from .client import ServerClient, ServerError
from .recommender import Backend, Recommender
from .store import EncryptedStore, StoreIntegrityError

__all__ = ["Device", "RoundReport"]

_log = logging.getLogger(__name__)
_HISTORY = "history"  # {"item_ids": [str], "ratings": [float >= 0]}: the app's item ids, oldest first
_LEGACY_INTERACTIONS = "interactions"  # earlier privrec: {"item_ids": [int row], "ratings": [float]}
_CREDENTIALS = "credentials"
_USER = "user_vector"
_ROUND = "round"


@dataclass(frozen=True)
class RoundReport:
    """How one round went for one device.

    Attributes:
        round_id: the round.
        outcome: ``"completed"``, ``"aborted"``, ``"excluded"`` (dropped by the server or joined late),
            ``"skipped"`` (not sampled) or ``"dropped"`` (this device went silent, e.g. injected dropout).
        stage: the stage the device stopped at (``drop_at``), else None.
        model_version: the model the round ran on.
        seconds: wall time the device spent in the round.
        detail: why the device left the round early (``"aborted"`` on its side), else None.
    """

    round_id: str
    outcome: str
    stage: str | None
    model_version: int
    seconds: float
    detail: str | None = None


def _safe_extract(data: bytes, dest: Path) -> None:
    """Extract a bundle tar (regular files only, no absolute paths, no ``..``) into ``dest``."""
    import io

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts:
                raise ValueError(f"Bundle archive member {member.name!r} must be a relative regular file.")
        tar.extractall(dest, filter="data")


class Device:
    """One device's runtime.

    Args:
        root: the device's private directory (store, bundles).
        name: the device's local id (bound into every store record).
        key: the store key (32 bytes); default: generated and kept in the store's keystore directory.
        backend: the bundle backend for recommend / fine-tune (``"onnxruntime"`` or ``"litert"``).
        public_key: the bundle publisher's (the server's) Ed25519 public key, pinned: every bundle installed
            must be signed by it (a path to the base64 file, its bytes, or the key).
        allow_unsigned: install bundles without checking any signature (development only; warned).
    """

    def __init__(
        self, root: Path | str, *, name: str, key: bytes | None = None, backend: Backend = "onnxruntime",
        public_key: PublicKeySource | None = None, allow_unsigned: bool = False,
    ) -> None:
        if public_key is None and not allow_unsigned:
            raise ValueError("A device needs the server's pinned `public_key` to verify bundles (or, for "
                             "development only, allow_unsigned=True).")
        self.root = Path(root)
        self.name = name
        self.backend: Backend = backend
        self.public_key = public_key
        self.allow_unsigned = allow_unsigned and public_key is None
        self.store = EncryptedStore(self.root / "store", name, key=key)
        self._recommender: Recommender | None = None
        self._model_version: int | None = None
        #: The encoded update (uint32[D]) of the last round this device computed. It stays on the device;
        #: tests use it to check the aggregate and to search the server's storage for it.
        self.last_encoded_update: NDArray[np.uint32] | None = None

    # ----------------------------------------------------------------------------------- data
    def add_interactions(self, item_ids: object, ratings: object | None = None) -> None:
        """Append interactions to the encrypted store, oldest first: the app's item ids and optional weights.

        Args:
            item_ids: the app's item ids (strings, as in the manifest's item map). For callers written
                for rows, ints are rows of the installed bundle and are stored as that bundle's ids for
                them; with no bundle installed, row ``r`` is stored as ``str(r)`` (the id a bundle without
                an item map gives it).
            ratings: non-negative finite weights, one per item (default 1).

        Raises ``TypeError``/``ValueError`` naming the first bad entry; nothing is stored then.
        """
        ids = self._as_item_ids(item_ids)
        weights = np.ones(len(ids), np.float64) if ratings is None else np.asarray(ratings, np.float64).reshape(-1)
        if weights.shape != (len(ids),):
            raise ValueError(f"`ratings` must have one weight per item ({len(ids)}). Found {weights.size}.")
        if not np.all(np.isfinite(weights)) or (weights < 0).any():
            raise ValueError("`ratings` must be finite and >= 0.")
        stored, stored_ratings = self.history()
        self.store.put_json(
            _HISTORY, {"item_ids": [*stored, *ids], "ratings": [*stored_ratings.tolist(), *(float(w) for w in weights)]}
        )
        self.store.delete(_USER)  # the stored user vector no longer reflects the history

    def add_interaction(self, item_id: str | int, rating: float = 1.0) -> None:
        """Append one interaction (an app item id; an int is a row, see :meth:`add_interactions`)."""
        self.add_interactions([item_id], [rating])

    def _as_item_ids(self, item_ids: object) -> list[str]:
        if holds_item_ids(item_ids):
            return check_history_ids(item_ids)
        rows = np.asarray(item_ids).reshape(-1)
        if rows.size == 0:
            return []
        if rows.dtype.kind not in "iu" or rows.min() < 0:
            raise TypeError(
                f"`item_ids` must be the app's item ids (strings) or rows (non-negative ints). Found {item_ids!r:.80}."
            )
        if self._recommender is None:
            return [str(int(r)) for r in rows]
        return self._recommender.item_map.ids_of(rows.tolist())

    def history(self) -> tuple[list[str], NDArray[np.float32]]:
        """The stored history: the app's item ids (oldest first) and their weights ``float32[M]``.

        Raises :class:`~privrec.runtime.StoreIntegrityError` when the record is not a history of item ids
        (a list of non-empty strings and one finite weight >= 0 each), and ``RuntimeError`` when only a
        history written by an earlier privrec (rows) is stored and no bundle is installed to convert it.
        """
        raw = self.store.get_json(_HISTORY)
        if raw is None:
            if _LEGACY_INTERACTIONS in self.store:
                return self._migrate_legacy()
            return [], np.zeros(0, np.float32)
        return _check_history_record(raw)

    def interactions(self) -> tuple[NDArray[np.str_], NDArray[np.float32]]:
        """``(item_ids str[M], ratings float32[M])``: :meth:`history` as numpy arrays."""
        ids, ratings = self.history()
        return np.asarray(ids, dtype=np.str_), ratings

    def _migrate_legacy(self) -> tuple[list[str], NDArray[np.float32]]:
        """Convert a history stored as rows by an earlier privrec to item ids, through the installed bundle.

        The new record is written before the old one is deleted: a crash in between leaves both, and the
        next read uses the new one (and deletes the old)."""
        rows, ratings = _check_legacy_record(self.store.get_json(_LEGACY_INTERACTIONS))
        if self._recommender is None:
            raise RuntimeError(
                "This device's history was stored as bundle rows by an earlier privrec: install the bundle those "
                "rows index (install_bundle) before reading or adding interactions, so they become item ids."
            )
        item_map = self._recommender.item_map
        keep = [pos for pos, row in enumerate(rows) if row < item_map.num_items]
        if len(keep) < len(rows):
            _log.warning(
                "history migration: %d of %d stored rows are outside bundle %s (%d items); dropped",
                len(rows) - len(keep), len(rows), self._recommender.manifest.model_version, item_map.num_items,
            )
        ids = item_map.ids_of([rows[p] for p in keep])
        kept_ratings = [ratings[p] for p in keep]
        self.store.put_json(_HISTORY, {"item_ids": ids, "ratings": kept_ratings})
        self.store.delete(_LEGACY_INTERACTIONS)
        self.store.delete(_USER)
        return ids, np.asarray(kept_ratings, np.float32)

    def mapped_history(self) -> MappedHistory:
        """The stored history mapped onto the installed bundle's rows; ``dropped`` lists the stored ids that
        bundle's catalog does not hold (left out of everything the device computes with it)."""
        ids, ratings = self.history()
        return self.recommender.map_history(ids, ratings)

    # ----------------------------------------------------------------------------------- bundle
    @property
    def recommender(self) -> Recommender:
        """The loaded bundle (install one first)."""
        if self._recommender is None:
            raise RuntimeError("No bundle is installed: call install_bundle() or take part in a round.")
        return self._recommender

    @property
    def model_version(self) -> int | None:
        """The server model version of the installed bundle, if it came from a server."""
        return self._model_version

    def install_bundle(self, source: Path | str | bytes, *, version: int | None = None) -> Recommender:
        """Load a bundle from a directory or from the server's tar bytes (hashes checked by the loader).

        Then maps the stored history through the bundle's item map (converting one an earlier privrec
        stored as rows) and logs how many stored interactions name items this catalog does not hold.
        A stored history that cannot be read (:class:`~privrec.runtime.StoreIntegrityError`) is raised
        and the previous bundle stays installed."""
        if isinstance(source, bytes):
            bundles = self.root / "bundles"
            bundles.mkdir(parents=True, exist_ok=True)
            target = bundles / f"v{version if version is not None else 'local'}"
            tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=bundles))
            try:
                _safe_extract(source, tmp)
                if target.exists():
                    shutil.rmtree(target)
                tmp.rename(target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            path = target
        else:
            path = Path(source)
        previous = self._recommender, self._model_version
        self._recommender = Recommender.load(path, backend=self.backend, public_key=self.public_key,
                                             allow_unsigned=self.allow_unsigned)
        self._model_version = version
        try:
            if _LEGACY_INTERACTIONS in self.store and _HISTORY in self.store:
                self.store.delete(_LEGACY_INTERACTIONS)  # a migration interrupted after its new record was written
            mapped = self.mapped_history()  # converts a history an earlier privrec stored as rows
        except BaseException:
            self._recommender, self._model_version = previous  # a stored history this bundle cannot read
            raise
        if mapped.dropped:
            _log.info(
                "bundle %s does not hold %d of the %d stored interactions' items (removed from the catalog); "
                "they are left out while it is installed", self._recommender.manifest.model_version,
                len(mapped.dropped), len(mapped.dropped) + mapped.rows.size,
            )
        return self._recommender

    def _labels(self) -> NDArray[np.float32]:
        """The recipe's labels of the stored history (mapped onto the installed bundle's rows)."""
        mapped = self.mapped_history()
        return self.recommender.recipe.labels(mapped.rows, self.recommender.num_items, weights=mapped.weights)

    def _bundle_key(self) -> list[Any]:
        return [self._model_version, self.recommender.manifest.model_version]

    def finetune(self) -> NDArray[np.float32]:
        """Rebuild the user vector from the stored history with the bundle's reconstruction recipe
        (:meth:`Recommender.reconstruct`) and keep it in the encrypted store.

        The history is mapped through the installed bundle's item map first: items its catalog does not
        hold are left out (:meth:`mapped_history` lists them), so the vector is the one a device that
        started on this bundle with the surviving history would build."""
        mapped = self.mapped_history()
        user = self.recommender.reconstruct(mapped.rows, weights=mapped.weights)
        self.store.put_json(_USER, {"model_version": self._bundle_key(), "user": user.tolist()})
        return user

    def user_vector(self) -> NDArray[np.float32]:
        """The stored user vector for the installed bundle (fine-tuned now if missing or stale)."""
        saved = self.store.get_json(_USER)
        if saved is None or saved.get("model_version") != self._bundle_key():
            return self.finetune()
        return np.asarray(saved["user"], np.float32)

    def recommend(self, k: int | None = None, *, exclude_seen: bool = True) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Top-``k`` rows of the installed bundle from its ``recommend`` signature, excluding seen items by
        default (:meth:`recommend_ids` returns the app's item ids)."""
        rows = self.mapped_history().rows
        exclude = np.unique(rows) if exclude_seen and rows.size else None
        return self.recommender.recommend(self.user_vector(), exclude=exclude, k=k)

    def recommend_ids(self, k: int | None = None, *, exclude_seen: bool = True) -> tuple[list[str], NDArray[np.float32]]:
        """:meth:`recommend` as the app's item ids (the installed bundle's item map) and their scores."""
        rows, scores = self.recommend(k, exclude_seen=exclude_seen)
        return self.recommender.item_map.ids_of(rows.tolist()), scores

    # ----------------------------------------------------------------------------------- rounds
    def connect(self, server: str, *, enrolment_code: str | None = None, **client_kwargs: Any) -> ServerClient:
        """A client for ``server`` with this device's token (registering once with the operator's one-time
        ``enrolment_code``; the token is stored encrypted). ``client_kwargs`` go to :class:`ServerClient`
        (e.g. ``verify=`` a CA bundle for TLS)."""
        creds = self.store.get_json(_CREDENTIALS)
        if creds is not None and creds.get("server") == server:
            return ServerClient(server, creds["token"], **client_kwargs)
        client = ServerClient(server, **client_kwargs)
        device_id = client.register(enrolment_code)
        self.store.put_json(_CREDENTIALS, {"server": server, "device_id": device_id, "token": client.token})
        return client

    @property
    def device_id(self) -> int:
        """The server-assigned id (the secure-aggregation client id); call :meth:`connect` first."""
        creds = self.store.get_json(_CREDENTIALS)
        if creds is None:
            raise RuntimeError("This device is not registered: call connect() first.")
        return int(creds["device_id"])

    def _ensure_model(self, client: ServerClient, version: int) -> None:
        if self._model_version == version and self._recommender is not None:
            return
        got, data = client.download_bundle()
        if got != version:
            raise ServerError(409, f"The server serves model {got}; the round runs on model {version}.")
        self.install_bundle(data, version=got)

    def _encoded_update(self, params: RoundParams, secagg: SecAggConfig) -> NDArray[np.uint32]:
        """This device's secure-aggregation input for the round: the update of the round's bundle, encoded."""
        rec = self.recommender
        layout = params.layout(num_items=rec.num_items, dim=rec.dim, features=rec.item_features)
        if params.vector_length(layout) != secagg.vector_length:
            raise WireError(
                f"the round's vector length is {secagg.vector_length}; its parameters describe "
                f"{params.vector_length(layout)}."
            )
        config = params.round_config()
        noise = SecureGaussianNoise() if config.noise_std > 0 or config.count_noise_std > 0 else None
        update = device_update(rec, self._labels(), recipe=rec.recipe, layout=layout, config=config, noise=noise)
        return params.encoder().encode(aggregation_input(update, adaptive=params.adaptive))

    def _save_round(self, round_id: str, client: SecAggClient, x: NDArray[np.uint32], outbox: dict[str, Any]) -> None:
        self.store.put_json(
            _ROUND,
            {"round_id": round_id, "client": client.to_dict(), "input": x.astype("<u4").tobytes().hex(), "outbox": outbox},
        )

    def take_part(
        self,
        client: ServerClient,
        *,
        drop_at: str | None = None,
        participate: bool | None = None,
        poll_seconds: float = 0.05,
        timeout_seconds: float = 600.0,
    ) -> RoundReport:
        """Take part in the server's current round until it ends for this device.

        Args:
            client: a connected :class:`ServerClient` (see :meth:`connect`).
            drop_at: a stage of :attr:`privrec.sdk.secagg.Stage.RUN` at which this device goes silent
                (dropout injection for simulations and tests), or None.
            participate: override the Poisson draw (None: join with the round's q, drawn with ``secrets``).
            poll_seconds: first wait between polls (doubles up to 0.25 s while waiting).
            timeout_seconds: give up (``TimeoutError``) after this long.
        """
        if drop_at is not None and drop_at not in Stage.RUN:
            raise ValueError(f"`drop_at` must be one of {Stage.RUN} or None. Found {drop_at!r}.")
        start = time.monotonic()
        info = client.current_round()
        round_id, version = str(info["round_id"]), int(info["model_version"])

        def report(outcome: str, stage: str | None = None, detail: str | None = None) -> RoundReport:
            self.store.delete(_ROUND)
            return RoundReport(round_id, outcome, stage, version, time.monotonic() - start, detail)

        saved = self.store.get_json(_ROUND)
        resuming = saved is not None and saved.get("round_id") == round_id
        if not resuming:
            self.store.delete(_ROUND)
            if info["checked_in"]:
                if not info["participant"]:
                    return report("skipped")
            elif info["phase"] != ENROLLING:
                return report("excluded")
            else:
                q = float(info["sample_rate"])
                joins = participate if participate is not None else secrets.randbelow(2**53) < q * 2**53
                client.checkin(round_id, joins)
                if not joins:
                    return report("skipped")
        sa_client: SecAggClient | None = None
        x: NDArray[np.uint32] | None = None
        outbox: dict[str, Any] = {}
        if resuming and saved is not None:
            sa_client = SecAggClient.from_dict(saved["client"])
            x = np.frombuffer(bytes.fromhex(saved["input"]), dtype="<u4").astype(np.uint32)
            outbox = saved["outbox"]
        delay = poll_seconds
        while True:
            if time.monotonic() - start > timeout_seconds:
                self.store.delete(_ROUND)
                raise TimeoutError(f"Round {round_id!r} did not finish within {timeout_seconds} s.")
            req = client.request(round_id)
            action = req["action"]
            if action in DeviceAction.FINAL:
                return report("completed" if action == DeviceAction.DONE else action)
            if action != DeviceAction.RESPOND:
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
                continue
            delay = poll_seconds
            stage, message = str(req["stage"]), req["message"]
            if drop_at == stage:
                return report("dropped", stage)
            if outbox.get("stage") == stage:  # resumed after a crash: resend the unacknowledged answer
                out = outbox["message"]
            else:
                try:
                    if stage == ServerStage.ADVERTISE_KEYS:
                        params = RoundParams.from_dict(message["params"])
                        secagg = SecAggConfig.from_dict(message["config"])
                        if params.round_id != round_id or params.model_version != version:
                            raise WireError(
                                f"round params for {params.round_id!r} on model {params.model_version}; "
                                f"this device is in round {round_id!r} on model {version}."
                            )
                        self._ensure_model(client, version)
                        x = self._encoded_update(params, secagg)
                        sa_client = SecAggClient(secagg, self.device_id)
                        out = sa_client.advertise_keys().to_dict()
                    elif sa_client is None or x is None:
                        return report("excluded", stage)
                    elif stage == ServerStage.SHARE_KEYS:
                        out = sa_client.share_keys(KeyRoster.from_dict(message)).to_dict()
                    elif stage == ServerStage.MASKED_INPUT_COLLECTION:
                        out = sa_client.mask_input(ShareRouting.from_dict(message), x).to_dict()
                    elif stage == ServerStage.UNMASKING:
                        out = sa_client.unmask(UnmaskingRequest.from_dict(message)).to_dict()
                    else:
                        raise WireError(f"the server asked for an answer in unknown stage {stage!r}.")
                except (SecAggError, WireError, BundleError, KeyError, TypeError) as exc:
                    # A round this device cannot complete (aborted, messages it must not answer, or a bundle that
                    # fails its signature or integrity checks): leave it.
                    return report("aborted", stage, f"{type(exc).__name__}: {exc}")
                self.last_encoded_update = x
                outbox = {"stage": stage, "message": out}
                if sa_client is not None and x is not None:
                    self._save_round(round_id, sa_client, x, outbox)
            try:
                client.submit(round_id, out)
            except ServerError as exc:
                if exc.status != 409:  # 409: the stage closed first; the next poll says what happened
                    raise

    def __repr__(self) -> str:
        return f"Device(name={self.name!r}, root={str(self.root)!r}, model_version={self._model_version})"


def _check_history_record(raw: object) -> tuple[list[str], NDArray[np.float32]]:
    """The ``history`` record's ids and weights, or :class:`StoreIntegrityError` naming what is wrong."""
    where = f"Store record {_HISTORY!r}"
    if not isinstance(raw, dict) or set(raw) != {"item_ids", "ratings"}:
        found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise StoreIntegrityError(f"{where} must be an object with keys ['item_ids', 'ratings']. Found {found}.")
    ids, ratings = raw["item_ids"], raw["ratings"]
    if not isinstance(ids, list) or not isinstance(ratings, list) or len(ids) != len(ratings):
        raise StoreIntegrityError(
            f"{where} must hold two lists of equal length. Found item_ids {type(ids).__name__} "
            f"and ratings {type(ratings).__name__}"
            + (f" of lengths {len(ids)} and {len(ratings)}." if isinstance(ids, list) and isinstance(ratings, list) else ".")
        )
    for pos, ident in enumerate(ids):
        if not isinstance(ident, str) or not ident:
            raise StoreIntegrityError(
                f"{where}: `item_ids[{pos}]` must be a non-empty item id string. Found {ident!r:.80} ({type(ident).__name__})."
            )
    return ids, _check_ratings(ratings, where)


def _check_legacy_record(raw: object) -> tuple[list[int], list[float]]:
    """The rows and weights of a history an earlier privrec stored, checked like :func:`_check_history_record`."""
    where = f"Store record {_LEGACY_INTERACTIONS!r} (written by an earlier privrec)"
    if not isinstance(raw, dict) or not isinstance(raw.get("item_ids"), list) or not isinstance(raw.get("ratings"), list) \
            or len(raw["item_ids"]) != len(raw["ratings"]):
        raise StoreIntegrityError(f"{where} must hold lists `item_ids` and `ratings` of equal length. Found {raw!r:.120}.")
    rows = raw["item_ids"]
    for pos, row in enumerate(rows):
        if isinstance(row, bool) or not isinstance(row, int) or row < 0:
            raise StoreIntegrityError(f"{where}: `item_ids[{pos}]` must be a row (an int >= 0). Found {row!r:.80}.")
    return rows, _check_ratings(raw["ratings"], where).tolist()


def _check_ratings(ratings: list[Any], where: str) -> NDArray[np.float32]:
    for pos, w in enumerate(ratings):
        if isinstance(w, bool) or not isinstance(w, int | float) or not np.isfinite(w) or w < 0:
            raise StoreIntegrityError(f"{where}: `ratings[{pos}]` must be a finite number >= 0. Found {w!r:.80}.")
    return np.asarray(ratings, np.float32)
