"""The device runtime: encrypted history, bundle fine-tuning and recommendations, rounds over HTTP."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server_stub"))
from safetensors.numpy import load
from srvkit import ADMIN, small_config

from privrec.runtime.device import Device, RoundReport
from privrec.runtime.store import StoreIntegrityError
from privrec.sdk.model import ItemModel
from privrec.sdk.recipe import ReconstructionRecipe
from privrec.sdk.reconstruct import FinetuneConfig, reconstruct
from privrec.server_stub import create_app
from privrec.testing.servers import serve_in_thread


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    app = create_app(tmp_path / "server.db", small_config(), admin_token=ADMIN, tick_seconds=0.1)
    captured: dict[str, Any] = {}
    app.state.manager.aggregate_observer = lambda rid, total, s: captured.update(total=total, survivors=s)
    app.state.captured = captured
    with serve_in_thread(app) as url:
        yield url, app


def _code(app: Any) -> str:
    """A one-time enrolment code from the server's operator."""
    (code,) = app.state.manager.issue_enrolment_codes(1)
    return str(code)


def _server_recipe() -> ReconstructionRecipe:
    return small_config().recipe


def test_history_is_encrypted_at_rest(tmp_path: Path) -> None:
    dev = Device(tmp_path / "d", name="alice", allow_unsigned=True)
    dev.add_interactions([3, 7, 11], [1.0, 0.5, 2.0])
    dev.add_interaction(5)
    dev.add_interactions(["sku-9"])
    ids, ratings = dev.interactions()
    # Stored by item id: with no bundle installed, row r is the id str(r) (a bundle without an item map).
    assert ids.tolist() == ["3", "7", "11", "5", "sku-9"] and ratings.tolist() == [1.0, 0.5, 2.0, 1.0, 1.0]
    raw = b"".join(p.read_bytes() for p in (tmp_path / "d" / "store").glob("*.rec"))
    assert b'"3", "7"' not in raw and b"sku-9" not in raw and b"item_ids" not in raw
    (rec,) = list((tmp_path / "d" / "store").glob("*.rec"))
    blob = bytearray(rec.read_bytes())
    blob[-3] ^= 0xFF
    rec.write_bytes(bytes(blob))
    with pytest.raises(StoreIntegrityError, match="Record 'history'"):
        dev.interactions()
    with pytest.raises(ValueError, match="`ratings` must be finite and >= 0"):
        Device(tmp_path / "e", name="e", allow_unsigned=True).add_interactions([1], [-1.0])


def test_finetune_runs_the_bundle_and_matches_the_reference(tmp_path: Path, server: tuple[str, Any]) -> None:
    url, _ = server
    dev = Device(tmp_path / "d", name="bob", public_key=_.state.public_key)
    dev.add_interactions([1, 4, 9], [1.0, 1.0, 0.5])
    client = dev.connect(url, enrolment_code=_code(_))
    version, data = client.download_bundle()
    rec = dev.install_bundle(data, version=version)
    user = dev.finetune()
    model = ItemModel(**load(client._call("GET", "/v1/model/weights").content))
    ft = rec.manifest.finetune
    # The server publishes its recipe (steps, lr, l2, calls, half-life) and the device follows it: the
    # item r interactions before the latest is labelled rating · 0.5 ** (r / h).
    assert ft == _server_recipe().to_manifest()
    h = ft["recency_half_life"]
    labels = np.array([1.0 * 0.5 ** (2 / h), 1.0 * 0.5 ** (1 / h), 0.5], np.float32)
    independent = FinetuneConfig(steps=ft["steps"], lr=ft["lr"], l2=ft["l2"], calls=ft["calls"])
    ref = reconstruct(model, [1, 4, 9], independent, labels=labels)  # the batched torch path
    np.testing.assert_allclose(user, ref, atol=1e-4)
    ids, scores = dev.recommend(k=5)
    assert len(ids) == 5 and not set(ids.tolist()) & {1, 4, 9}
    assert np.all(np.diff(scores) <= 0)
    np.testing.assert_allclose(dev.user_vector(), user)  # stored (encrypted), not recomputed
    client.close()


def test_devices_complete_a_round_over_http(tmp_path: Path, server: tuple[str, Any]) -> None:
    url, app = server
    rng = np.random.default_rng(0)
    fleet = [Device(tmp_path / f"d{i}", name=f"d{i}", public_key=app.state.public_key) for i in range(4)]
    for dev in fleet:
        dev.add_interactions(rng.choice(20, size=5, replace=False))
    clients = [dev.connect(url, enrolment_code=_code(app)) for dev in fleet]
    reports: list[RoundReport | None] = [None] * 4

    def run(i: int) -> None:
        reports[i] = fleet[i].take_part(clients[i], participate=True, drop_at="unmasking" if i == 3 else None)

    round_id = clients[0].current_round()["round_id"]  # opens the round
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    # Device 3 goes silent in Round 4; the admin closes that stage (instead of waiting for the deadline).
    for _ in range(600):
        st = clients[0].status(round_id)
        # All but the silent device answered, and the silent device has seen the unmasking request and
        # gone quiet (otherwise it could first poll after the round completed and never drop).
        if st["phase"] == "unmasking" and st["pending"] == 1 and reports[3] is not None:
            clients[0].admin_advance(round_id, ADMIN)
        if st["phase"] in ("completed", "aborted"):
            break
        threading.Event().wait(0.05)
    for t in threads:
        t.join(timeout=60)
    outcomes = [r.outcome for r in reports if r is not None]
    assert outcomes == ["completed", "completed", "completed", "dropped"]
    got = app.state.captured
    assert len(got["survivors"]) == 4  # the dropout happened after its masked input was in
    expected = np.zeros(80, np.uint32)
    for dev in fleet:
        assert dev.last_encoded_update is not None
        np.add(expected, dev.last_encoded_update, out=expected)
    np.testing.assert_array_equal(got["total"], expected)
    assert clients[0].model_info()["version"] == 1
    # Round state (private keys, seeds) is deleted from the store when the round ends.
    assert all("round" not in dev.store for dev in fleet)


class _DeviceDiedError(Exception):
    """The device process dies (raised from inside its HTTP client)."""


def test_device_resumes_a_round_after_a_crash_mid_round(tmp_path: Path, server: tuple[str, Any]) -> None:
    """A device that dies after computing its Round-1 answer (saved in its encrypted store) but before the
    server got it resumes in a new process: it resends the saved answer and the round completes with its
    contribution in the sum."""
    url, app = server
    rng = np.random.default_rng(1)
    fleet = [Device(tmp_path / f"d{i}", name=f"d{i}", public_key=app.state.public_key) for i in range(3)]
    for dev in fleet:
        dev.add_interactions(rng.choice(20, size=5, replace=False))
    clients = [dev.connect(url, enrolment_code=_code(app)) for dev in fleet]
    real_submit = clients[0].submit

    def dying_submit(round_id: str, message: dict[str, Any]) -> dict[str, Any]:
        if message["type"] == "share_keys":
            raise _DeviceDiedError
        return real_submit(round_id, message)

    clients[0].submit = dying_submit  # type: ignore[method-assign]
    reports: dict[int, RoundReport] = {}
    errors: dict[int, BaseException] = {}

    def run(i: int, dev: Device, client: Any) -> None:
        try:
            reports[i] = dev.take_part(client, participate=True)
        except BaseException as exc:  # the crash of device 0
            errors[i] = exc

    clients[0].current_round()
    threads = [threading.Thread(target=run, args=(i, fleet[i], clients[i])) for i in range(3)]
    for t in threads:
        t.start()
    threads[0].join(timeout=120)
    assert isinstance(errors.get(0), _DeviceDiedError)
    assert "round" in fleet[0].store  # the round state survived the crash
    reborn = Device(tmp_path / "d0", name="d0", public_key=app.state.public_key)  # a new process, same directory
    run(3, reborn, reborn.connect(url))  # its stored token: no new code
    for t in threads[1:]:
        t.join(timeout=120)
    assert [reports[i].outcome for i in (1, 2, 3)] == ["completed"] * 3
    expected = np.zeros(80, np.uint32)
    for dev in (reborn, fleet[1], fleet[2]):
        assert dev.last_encoded_update is not None
        np.add(expected, dev.last_encoded_update, out=expected)
    np.testing.assert_array_equal(app.state.captured["total"], expected)
    assert "round" not in reborn.store


@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_update_through_the_exported_signatures_equals_the_reference_and_the_batch(tmp_path: Path, backend: str) -> None:
    """The device's update computed through the bundle (onnxruntime / LiteRT) equals the numpy reference of the
    same signatures and the simulation's batched torch path, for a table tied to public features."""
    import torch

    from privrec.export import export_bundle
    from privrec.runtime import Recommender
    from privrec.sdk.federated import NumpySignatures, ParamLayout, RoundConfig, cohort_update_sum, device_update

    rng = np.random.default_rng(3)
    F = rng.random((40, 3)).astype(np.float32)
    layout = ParamLayout(num_items=40, dim=5, features=F)
    params = layout.init(init_std=0.3, seed=4)
    recipe = ReconstructionRecipe(steps=5, lr=0.1, l2=0.5, calls=4, recency_half_life=3.0)
    bundle = export_bundle(layout.item_model(params), tmp_path / "b", formats=("onnx", "tflite"), finetune=recipe.finetune,
                           recency_half_life=recipe.recency_half_life, item_features=F)
    rec = Recommender.load(bundle, backend=backend, allow_unsigned=True)  # type: ignore[arg-type]
    np.testing.assert_array_equal(rec.item_features, F)
    labels = rec.recipe.labels([4, 9, 4, 30, 2], 40)
    cfg = RoundConfig(clip_norm=0.05, local_lr=2.0, bias_scale=2.0)
    on_device = device_update(rec, labels, recipe=rec.recipe, layout=layout, config=cfg)
    reference = device_update(NumpySignatures(layout.item_model(params), recipe.steps), labels, recipe=recipe,
                              layout=layout, config=cfg)
    batched = cohort_update_sum(layout, params, torch.from_numpy(labels[None, :]), clip_norm=0.05, local_lr=2.0,
                                finetune=recipe.finetune, bias_scale=2.0)
    assert on_device.stats.clipped
    np.testing.assert_allclose(on_device.vector, reference.vector, atol=2e-6)
    np.testing.assert_allclose(on_device.vector, batched.total, atol=2e-6)
    assert on_device.stats.norm == pytest.approx(reference.stats.norm, rel=1e-4)


def test_a_device_refuses_a_bundle_not_signed_by_its_pinned_key(tmp_path: Path, server: tuple[str, Any]) -> None:
    """The attack: a server (or whoever controls it) serves a model signed with another key. The device pinned to
    the publisher's key refuses to install it, leaves the round cleanly, and keeps no bundle."""
    from privrec.export.signing import generate_signing_key

    url, app = server
    _, other_public = generate_signing_key(tmp_path / "other-key")
    dev = Device(tmp_path / "d", name="mallory-victim", public_key=other_public)
    dev.add_interactions([1, 2, 3])
    client = dev.connect(url, enrolment_code=_code(app))
    _, data = client.download_bundle()
    with pytest.raises(ValueError, match=r"manifest\.sig"):
        dev.install_bundle(data, version=0)
    with pytest.raises(ValueError, match="needs the server's pinned `public_key`"):
        Device(tmp_path / "e", name="e")
