"""The privacy ledger of a federated run: what was released, and the (ε, δ) it costs.

Saved as ``privacy_ledger.json`` in the RUN_DIR (:meth:`PrivacyLedger.save`, :meth:`PrivacyLedger.load`)
and copied **verbatim** by the exporter into the bundle manifest's ``"privacy"`` key: the file's object has the
manifest shape ``{"mode", "ledger", "epsilon", "delta", …}`` (:meth:`PrivacyLedger.to_manifest` is the same
dict; :func:`manifest_privacy` also covers centrally trained models). JSON has no infinity: **ε = inf
(no guarantee: mode ``"off"`` or Z = 0) is written as ``null``** and read back as ``math.inf``.

``privacy_ledger.json`` (``schema_version`` 1)::

    {
      "schema_version": 1,
      "mode": "central",                       # "central" | "distributed" | "off"
      "mechanism": "poisson_subsampled_gaussian",
      "accountant": {"stated": "rdp", "neighboring_relation": "add_or_remove_one",
                     "pld_value_discretization_interval": 0.0001, "dp_accounting_version": "0.6.0"},
      "delta": 1e-05,
      "epsilon": 2.1014, "epsilon_rdp": 2.1014, "epsilon_pld": 1.8282,   # null = inf
      "rounds": 1000,                          # rounds actually run (sum over entries)
      "secure_noise": true,
      "warnings": [],
      "ledger": [ENTRY, ...],                  # consecutive identical rounds merged, in run order
      "empirical_lower_bound": {...}           # only after `privrec audit` (see below)
    }

``empirical_lower_bound`` (absent until the run is audited) is the privacy audit's measured **lower** bound
(:class:`~privrec.sdk.privacy.audit.EmpiricalLowerBound`): ``{"epsilon_lower", "delta", "confidence",
"canaries", "method"}`` — what an attacker demonstrably learned, never a guarantee; ``"epsilon"`` above stays
the accountant's upper bound.

ENTRY::

    {"mechanism": "poisson_subsampled_gaussian",   # or "none" for mode-off rounds
     "noise_multiplier": 1.0,       # Z accounted per round (the effective z with adaptive clipping)
     "sample_rate": 0.01, "rounds": 1000,
     "clip_norm": 1.0,              # fixed C; null when adaptive or mode off
     "adaptive_clipping": null}     # or {"update_noise_multiplier", "count_noise_std", "initial_clip_norm",
                                    #      "final_clip_norm", "min_clip_norm", "max_clip_norm"}

Bundle manifest ``"privacy"`` (also documented in docs/BUNDLE.md): the object above, unchanged — so readers
rely on ``"mode"``, ``"ledger"``, ``"epsilon"``, ``"delta"`` (and may read the rest) — and for a centrally
trained model (no federated training, no DP claim; no ``epsilon``/``delta`` keys)::

    {"mode": "none", "ledger": []}
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
from pathlib import Path
from typing import Any, get_args

from .accountant import PrivacyAccountant
from .audit import EmpiricalLowerBound
from .config import DPMode
from .events import (
    MECHANISM_GAUSSIAN,
    MECHANISM_NONE,
    AdaptiveClipEvent,
    DPRoundEvent,
    NonPrivateRoundEvent,
    PrivacyEvent,
)

__all__ = [
    "LEDGER_FILENAME",
    "LEDGER_SCHEMA_VERSION",
    "AdaptiveClipSummary",
    "LedgerEntry",
    "PrivacyLedger",
    "manifest_privacy",
]

LEDGER_FILENAME = "privacy_ledger.json"
LEDGER_SCHEMA_VERSION = 1

WARNING_MODE_OFF = "DP mode 'off': no noise and no differential-privacy guarantee (epsilon = inf)."
WARNING_INSECURE_NOISE = "Noise came from a seeded, insecure generator (simulation only): it does not protect users."
WARNING_ZERO_NOISE = "Some rounds ran with noise multiplier 0: no differential-privacy guarantee (epsilon = inf)."


def _eps_to_json(value: float) -> float | None:
    return None if math.isinf(value) else value


def _eps_from_json(value: object, name: str) -> float:
    if value is None:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"`{name}` must be a number or null. Found {type(value).__name__}.")
    return float(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaptiveClipSummary:
    """The adaptive clip-norm schedule of a run of rounds (Andrew et al. 2021)."""

    update_noise_multiplier: float
    count_noise_std: float
    initial_clip_norm: float
    final_clip_norm: float
    min_clip_norm: float
    max_clip_norm: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """Consecutive rounds with the same release.

    Attributes:
        mechanism: ``"poisson_subsampled_gaussian"`` or ``"none"`` (mode off).
        noise_multiplier: Z accounted per round (effective z of update + count with adaptive clipping; 0.0
            for ``"none"``).
        sample_rate: Poisson rate q.
        rounds: number of rounds T in this entry.
        clip_norm: the fixed C, or None (adaptive clipping, or mode off).
        adaptive_clipping: the schedule summary, or None.
    """

    mechanism: str
    noise_multiplier: float
    sample_rate: float
    rounds: int
    clip_norm: float | None = None
    adaptive_clipping: AdaptiveClipSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ENTRY shape of the module docstring)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LedgerEntry:
        """Reverse of :meth:`to_dict`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) != fields:
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"a ledger entry must have keys {sorted(fields)}. Found {found}.")
        adaptive = data["adaptive_clipping"]
        return cls(**{**data, "adaptive_clipping": None if adaptive is None else AdaptiveClipSummary(**adaptive)})


def _entries(events: tuple[PrivacyEvent, ...]) -> tuple[LedgerEntry, ...]:
    """Merge consecutive events of one release into entries (adaptive rounds merge across C)."""
    out: list[LedgerEntry] = []
    for ev in events:
        if isinstance(ev, AdaptiveClipEvent):
            prev = out[-1] if out else None
            if (
                prev is not None
                and prev.adaptive_clipping is not None
                and prev.adaptive_clipping.update_noise_multiplier == ev.update_noise_multiplier
                and prev.adaptive_clipping.count_noise_std == ev.count_noise_std
                and prev.sample_rate == ev.sample_rate
            ):
                s = prev.adaptive_clipping
                out[-1] = dataclasses.replace(
                    prev,
                    rounds=prev.rounds + ev.rounds,
                    adaptive_clipping=dataclasses.replace(
                        s,
                        final_clip_norm=ev.clip_norm,
                        min_clip_norm=min(s.min_clip_norm, ev.clip_norm),
                        max_clip_norm=max(s.max_clip_norm, ev.clip_norm),
                    ),
                )
                continue
            summary = AdaptiveClipSummary(
                update_noise_multiplier=ev.update_noise_multiplier,
                count_noise_std=ev.count_noise_std,
                initial_clip_norm=ev.clip_norm,
                final_clip_norm=ev.clip_norm,
                min_clip_norm=ev.clip_norm,
                max_clip_norm=ev.clip_norm,
            )
            out.append(
                LedgerEntry(
                    mechanism=MECHANISM_GAUSSIAN,
                    noise_multiplier=ev.effective_noise_multiplier,
                    sample_rate=ev.sample_rate,
                    rounds=ev.rounds,
                    adaptive_clipping=summary,
                )
            )
            continue
        clip = ev.clip_norm if isinstance(ev, DPRoundEvent) else None
        entry = LedgerEntry(
            mechanism=ev.mechanism,
            noise_multiplier=ev.effective_noise_multiplier,
            sample_rate=ev.sample_rate,
            rounds=ev.rounds,
            clip_norm=clip,
        )
        if out and dataclasses.replace(out[-1], rounds=entry.rounds) == entry:
            out[-1] = dataclasses.replace(out[-1], rounds=out[-1].rounds + entry.rounds)
        else:
            out.append(entry)
    return tuple(out)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrivacyLedger:
    """The privacy record of one federated run (see the module docstring for the JSON shape).

    Build it with :meth:`from_accountant` at the end of training (or after every round: it is cheap to
    rebuild), save it with :meth:`save`.
    """

    mode: DPMode
    delta: float
    epsilon_rdp: float
    epsilon_pld: float
    secure_noise: bool
    entries: tuple[LedgerEntry, ...]
    pld_value_discretization_interval: float
    warnings: tuple[str, ...] = ()
    dp_accounting_version: str = dataclasses.field(default_factory=lambda: importlib.metadata.version("dp-accounting"))
    empirical_lower_bound: EmpiricalLowerBound | None = None

    def __post_init__(self) -> None:
        if self.mode not in get_args(DPMode):
            raise ValueError(f"`mode` must be one of {list(get_args(DPMode))}. Found {self.mode!r}.")

    @property
    def epsilon(self) -> float:
        """The stated ε (RDP; see :mod:`privrec.sdk.privacy.accountant`). ``math.inf`` = no guarantee."""
        return self.epsilon_rdp

    @property
    def rounds(self) -> int:
        """Rounds actually run."""
        return sum(e.rounds for e in self.entries)

    @classmethod
    def from_accountant(
        cls,
        accountant: PrivacyAccountant,
        *,
        mode: DPMode,
        secure_noise: bool,
        warnings: tuple[str, ...] | list[str] = (),
    ) -> PrivacyLedger:
        """The ledger of everything ``accountant`` composed, with ε from both accountants.

        The standard warnings (mode off, insecure noise, zero noise) are added automatically, after
        ``warnings`` (yours, e.g. rounds that ran under-noised after dropouts).

        Raises:
            ValueError: if ``mode="off"`` but a private round was recorded, or a non-private round was
                recorded in mode ``"central"`` / ``"distributed"``.
        """
        if not isinstance(accountant, PrivacyAccountant):
            raise TypeError(f"`accountant` must be a PrivacyAccountant. Found {type(accountant).__name__}.")
        if not isinstance(secure_noise, bool):
            raise TypeError(f"`secure_noise` must be a bool. Found {type(secure_noise).__name__}.")
        if mode not in get_args(DPMode):
            raise ValueError(f"`mode` must be one of {list(get_args(DPMode))}. Found {mode!r}.")
        events = accountant.events
        for i, ev in enumerate(events):
            if mode == "off" and not isinstance(ev, NonPrivateRoundEvent):
                raise ValueError(f"mode 'off' records only NonPrivateRoundEvent. Found {type(ev).__name__} at position {i}.")
            if mode != "off" and isinstance(ev, NonPrivateRoundEvent):
                raise ValueError(f"mode {mode!r} must not record NonPrivateRoundEvent. Found one at position {i}.")
        all_warnings = list(warnings)
        if mode == "off":
            all_warnings.append(WARNING_MODE_OFF)
        elif any(ev.effective_noise_multiplier == 0.0 for ev in events):
            all_warnings.append(WARNING_ZERO_NOISE)
        if not secure_noise and mode != "off":
            all_warnings.append(WARNING_INSECURE_NOISE)
        report = accountant.epsilon()
        return cls(
            mode=mode,
            delta=accountant.delta,
            epsilon_rdp=report.epsilon_rdp,
            epsilon_pld=report.epsilon_pld,
            secure_noise=secure_noise,
            entries=_entries(events),
            pld_value_discretization_interval=accountant.pld_value_discretization_interval,
            warnings=tuple(all_warnings),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``privacy_ledger.json`` object (strict JSON: inf ε as ``null``)."""
        return {
            "schema_version": LEDGER_SCHEMA_VERSION,
            "mode": self.mode,
            "mechanism": MECHANISM_NONE if self.mode == "off" else MECHANISM_GAUSSIAN,
            "accountant": {
                "stated": "rdp",
                "neighboring_relation": "add_or_remove_one",
                "pld_value_discretization_interval": self.pld_value_discretization_interval,
                "dp_accounting_version": self.dp_accounting_version,
            },
            "delta": self.delta,
            "epsilon": _eps_to_json(self.epsilon),
            "epsilon_rdp": _eps_to_json(self.epsilon_rdp),
            "epsilon_pld": _eps_to_json(self.epsilon_pld),
            "rounds": self.rounds,
            "secure_noise": self.secure_noise,
            "warnings": list(self.warnings),
            "ledger": [e.to_dict() for e in self.entries],
        } | ({} if self.empirical_lower_bound is None else {"empirical_lower_bound": self.empirical_lower_bound.to_dict()})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrivacyLedger:
        """Reverse of :meth:`to_dict`.

        Raises:
            ValueError: for another ``schema_version``, a missing key, or inconsistent totals.
        """
        if not isinstance(data, dict):
            raise TypeError(f"`data` must be a dict. Found {type(data).__name__}.")
        if data.get("schema_version") != LEDGER_SCHEMA_VERSION:
            raise ValueError(f"`schema_version` must be {LEDGER_SCHEMA_VERSION}. Found {data.get('schema_version')!r}.")
        required = (
            "mode",
            "accountant",
            "delta",
            "epsilon_rdp",
            "epsilon_pld",
            "rounds",
            "secure_noise",
            "warnings",
            "ledger",
        )
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"privacy ledger must have keys {list(required)}. Missing {missing}.")
        ledger = cls(
            mode=data["mode"],
            delta=float(data["delta"]),
            epsilon_rdp=_eps_from_json(data["epsilon_rdp"], "epsilon_rdp"),
            epsilon_pld=_eps_from_json(data["epsilon_pld"], "epsilon_pld"),
            secure_noise=bool(data["secure_noise"]),
            entries=tuple(LedgerEntry.from_dict(e) for e in data["ledger"]),
            pld_value_discretization_interval=float(data["accountant"]["pld_value_discretization_interval"]),
            warnings=tuple(str(w) for w in data["warnings"]),
            dp_accounting_version=str(data["accountant"]["dp_accounting_version"]),
            empirical_lower_bound=(EmpiricalLowerBound.from_dict(data["empirical_lower_bound"])
                                   if "empirical_lower_bound" in data else None),
        )
        if ledger.rounds != data["rounds"]:
            raise ValueError(f"`rounds` must equal the sum over entries ({ledger.rounds}). Found {data['rounds']}.")
        return ledger

    def save(self, run_dir: str | Path) -> Path:
        """Write ``RUN_DIR/privacy_ledger.json`` (creating RUN_DIR) and return its path."""
        directory = Path(run_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / LEDGER_FILENAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> PrivacyLedger:
        """Read a ledger from a RUN_DIR (its ``privacy_ledger.json``) or from the file itself."""
        p = Path(path)
        if p.is_dir():
            p = p / LEDGER_FILENAME
        return cls.from_dict(json.loads(p.read_text()))

    def to_manifest(self) -> dict[str, Any]:
        """The bundle manifest's ``"privacy"`` value: the same object as :meth:`to_dict` (module docstring)."""
        return self.to_dict()


def manifest_privacy(ledger: PrivacyLedger | None) -> dict[str, Any]:
    """The manifest's ``"privacy"`` value: ``ledger.to_manifest()``, or the no-claim shape for ``None``
    (a centrally trained model): ``{"mode": "none", "ledger": []}``."""
    if ledger is None:
        return {"mode": "none", "ledger": []}
    if not isinstance(ledger, PrivacyLedger):
        raise TypeError(f"`ledger` must be a PrivacyLedger or None. Found {type(ledger).__name__}.")
    return ledger.to_manifest()
