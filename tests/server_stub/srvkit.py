"""Helpers for the server tests: a fleet of raw secure-aggregation clients driving the HTTP API."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from privrec.sdk.privacy import DPConfig, PrivacyWarning
from privrec.sdk.secagg import FixedPointEncoder, KeyRoster, SecAggClient, SecAggConfig, ShareRouting, Stage, UnmaskingRequest
from privrec.server_stub import ServerConfig

ADMIN = "test-admin-token"


class Http(Protocol):
    def get(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...


def small_config(**overrides: Any) -> ServerConfig:
    """20 items × 3 dims (D = 80), DP off (warning silenced), long deadlines: tests close stages themselves."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        dp = overrides.pop("dp", DPConfig(mode="off", clip_norm=1.0))
    values: dict[str, Any] = {
        "num_items": 20, "dim": 3, "dp": dp, "threshold_fraction": 0.2, "enroll_close_fraction": 1.0,
        "enroll_timeout_seconds": 600.0, "stage_timeout_seconds": 600.0,
    }
    values.update(overrides)
    return ServerConfig(**values)


@dataclass
class Fleet:
    """``n`` registered devices, each with a raw :class:`SecAggClient` and a random encoded input."""

    http: Http
    n: int
    seed: int = 0
    ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    clients: dict[int, SecAggClient] = field(default_factory=dict)
    inputs: dict[int, NDArray[np.uint32]] = field(default_factory=dict)
    responses: list[bytes] = field(default_factory=list)
    round_id: str = ""

    def __post_init__(self) -> None:
        codes = self.http.post("/v1/admin/enrolment-codes", json={"count": self.n}, headers={"Authorization": f"Bearer {ADMIN}"})
        assert codes.status_code == 201, codes.text
        for code in codes.json()["codes"]:
            r = self.http.post("/v1/devices", json={"enrolment_code": code})
            assert r.status_code == 201, r.text
            self.responses.append(r.content)
            self.ids.append(r.json()["device_id"])
            self.tokens.append(r.json()["token"])

    def headers(self, i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[i]}"}

    def enroll(self) -> str:
        """Open (on demand) and fill the current round; enrolment closes when all checked in."""
        r = self.http.get("/v1/rounds/current", headers=self.headers(0))
        assert r.status_code == 200, r.text
        self.round_id = r.json()["round_id"]
        for i in range(self.n):
            r = self.http.post(f"/v1/rounds/{self.round_id}/checkin", json={"participate": True}, headers=self.headers(i))
            assert r.status_code == 200, r.text
        return self.round_id

    def answer(self, i: int) -> tuple[int, dict[str, Any]]:
        """Device ``i``'s answer to its current server request: ``(status of the POST, message)``."""
        u = self.ids[i]
        r = self.http.get(f"/v1/rounds/{self.round_id}/request", headers=self.headers(i))
        assert r.status_code == 200, r.text
        self.responses.append(r.content)
        req = r.json()
        assert req["action"] == "respond", req
        m = req["message"]
        if m["type"] == "round_config":
            cfg = SecAggConfig.from_dict(m["config"])
            self.clients[u] = SecAggClient(cfg, u)
            p = m["params"]
            enc = FixedPointEncoder(clip_range=p["clip_range"], max_clients=p["max_clients"])
            rng = np.random.default_rng(self.seed * 1000 + u)
            self.inputs[u] = enc.encode(rng.uniform(-p["clip_norm"], p["clip_norm"], cfg.vector_length))
            out = self.clients[u].advertise_keys().to_dict()
        elif m["type"] == "key_roster":
            out = self.clients[u].share_keys(KeyRoster.from_dict(m)).to_dict()
        elif m["type"] == "share_routing":
            out = self.clients[u].mask_input(ShareRouting.from_dict(m), self.inputs[u]).to_dict()
        else:
            out = self.clients[u].unmask(UnmaskingRequest.from_dict(m)).to_dict()
        r = self.http.post(f"/v1/rounds/{self.round_id}/messages", json=out, headers=self.headers(i))
        self.responses.append(r.content)
        return r.status_code, out

    def advance(self) -> Any:
        r = self.http.post(f"/v1/admin/rounds/{self.round_id}/advance", headers={"Authorization": f"Bearer {ADMIN}"})
        self.responses.append(r.content)
        return r

    def status(self) -> dict[str, Any]:
        r = self.http.get(f"/v1/rounds/{self.round_id}", headers=self.headers(0))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def run_round(self, dropout: float, rng: np.random.Generator) -> list[int]:
        """Every stage: ``round(dropout · alive)`` devices go silent, the rest answer, then the stage closes
        (automatically if nobody dropped, else by the admin). Returns the indices that sent masked inputs."""
        alive = list(range(self.n))
        masked: list[int] = []
        for stage in Stage.RUN:
            k = round(dropout * len(alive))
            silent = set(rng.choice(alive, size=k, replace=False).tolist()) if k else set()
            alive = [i for i in alive if i not in silent]
            for i in alive:
                code, _ = self.answer(i)
                assert code == 200
            if stage == Stage.MASKED_INPUT_COLLECTION:
                masked = list(alive)
            if silent:
                r = self.advance()
                assert r.status_code == 200, r.text
            if self.status()["phase"] in ("completed", "aborted"):
                break
        return masked

    def expected_sum(self, indices: list[int]) -> NDArray[np.uint32]:
        total = np.zeros_like(next(iter(self.inputs.values())))
        for i in indices:
            np.add(total, self.inputs[self.ids[i]], out=total)
        return total


def db_bytes(db: Path) -> bytes:
    """The database file and its WAL / shm side files, concatenated."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(f"{db}{suffix}")
        if p.exists():
            out += p.read_bytes()
    return out
