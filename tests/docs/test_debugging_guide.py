"""Every message the Debugging guide quotes is what privrec says: each one is triggered here, for real, and its
text compared with the quoted one (``<…>`` in the page matches any text)."""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from privrec.sdk.model import ItemModel

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "debugging.md"
_MARKER = re.compile(r"<!-- error: ([a-z0-9-]+) -->\s*\n\s*```text\n(.*?)\n\s*```", re.S)


def quoted_messages() -> dict[str, str]:
    """``{id: message}`` of every ``<!-- error: id -->`` followed by a ```text block in the guide."""
    found: dict[str, str] = {}
    for ident, body in _MARKER.findall(GUIDE.read_text(encoding="utf-8")):
        assert ident not in found, f"the guide quotes error {ident!r} twice"
        found[ident] = " ".join(line.strip() for line in body.strip().splitlines())
    return found


def as_regex(quoted: str) -> re.Pattern[str]:
    """The quoted message as a full-match regex: ``<…>`` placeholders match any non-empty text."""
    parts = re.split(r"<[^<>]+>", quoted)
    return re.compile(".+?".join(re.escape(p) for p in parts), re.S)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from privrec.export import generate_signing_key

    return generate_signing_key(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def signed_bundle(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> Path:
    from privrec.export import export_bundle

    rng = np.random.default_rng(0)
    model = ItemModel(item_embedding=rng.normal(size=(20, 4)).astype(np.float32), item_bias=np.zeros(20, np.float32))
    out = tmp_path_factory.mktemp("bundles") / "signed"
    export_bundle(model, out, formats=("onnx",), precision="int8", sign_key=keys[0])
    return out


@pytest.fixture
def copy(signed_bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(signed_bundle, target)
    return target


def _raised(fn: Callable[[], object], kind: type[BaseException] = Exception) -> str:
    with pytest.raises(kind) as info:
        fn()
    return str(info.value)


def _warned(fn: Callable[[], object], kind: type[Warning]) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    messages = [str(w.message) for w in caught if issubclass(w.category, kind)]
    assert messages, f"no {kind.__name__} was emitted"
    return messages[0]


# ------------------------------------------------------------------------------------------------ triggers
def _load(bundle: Path, **kwargs: object) -> object:
    from privrec.runtime import Recommender

    return Recommender.load(bundle, **kwargs)  # type: ignore[arg-type]


def t_public_key_required(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    return _raised(lambda: _load(copy), ValueError)


def t_unsigned_warning(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.export import BundleWarning

    return _warned(lambda: _load(copy, allow_unsigned=True), BundleWarning)


def t_unsigned_bundle(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    (copy / "manifest.sig").unlink()
    return _raised(lambda: _load(copy, public_key=keys[1]))


def t_signed_by_another_key(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.export import generate_signing_key

    _, other = generate_signing_key(tmp_path / "other")
    return _raised(lambda: _load(copy, public_key=other))


def t_signature_does_not_verify(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    manifest = copy / "manifest.json"
    manifest.write_text(manifest.read_text() + " ")
    return _raised(lambda: _load(copy, public_key=keys[1]))


def t_sha256_mismatch(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    target = copy / "model.onnx.data"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 1
    target.write_bytes(bytes(raw))
    message = _raised(lambda: _load(copy, public_key=keys[1]))
    assert message.startswith("model.onnx.data: ")
    return message


def t_size_mismatch(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    with (copy / "golden.json").open("ab") as f:
        f.write(b" ")
    return _raised(lambda: _load(copy, public_key=keys[1]))


def t_file_missing(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    (copy / "golden.json").unlink()
    return _raised(lambda: _load(copy, public_key=keys[1]))


def t_not_a_bundle(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    return _raised(lambda: _load(tmp_path, public_key=keys[1]))


def t_schema_version(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.export import BundleWarning

    manifest = copy / "manifest.json"
    raw = json.loads(manifest.read_text())
    raw["schema_version"] = 2
    manifest.write_text(json.dumps(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BundleWarning)
        return _raised(lambda: _load(copy, allow_unsigned=True))


def t_no_artifact_for_backend(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    return _raised(lambda: _load(copy, backend="litert", public_key=keys[1]), ValueError)


def t_verify_not_authenticated(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    import contextlib
    import io

    from privrec.cli import verify

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        verify(copy, as_json=False, public_key=None)
    (line,) = [x for x in err.getvalue().splitlines() if x.startswith("warning:")]
    return line


def t_runner_failed(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.export import verify as verify_module

    def missing_runtime(fmt: str) -> Callable[..., object]:
        def factory(*_: object) -> object:
            raise ModuleNotFoundError("No module named 'onnxruntime'")

        return factory

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(verify_module, "get_runner_factory", missing_runtime)
        report = verify_module.verify_bundle(copy, public_key=keys[1])
    assert not report["ok"]
    errors = [c["error"] for c in report["checks"] if c.get("error")]
    assert errors
    return str(errors[0])


def _facade(max_rounds: int, clients: int) -> object:
    from privrec import FederatedRecommendationSystem

    fed = FederatedRecommendationSystem(num_items=10, embedding_dim=2, epsilon=1.0, num_clients=10, max_rounds=max_rounds)
    for i in range(clients):
        fed.register_client(f"d{i}").add_interaction(i, 1.0)
    return fed


def t_budget_exceeded(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    fed = _facade(max_rounds=1, clients=2)
    fed.federated_round(["d0", "d1"])  # type: ignore[attr-defined]
    from privrec.sdk.errors import PrivacyBudgetExceededError

    return _raised(lambda: fed.federated_round(["d0", "d1"]), PrivacyBudgetExceededError)  # type: ignore[attr-defined]


def t_epsilon_unreachable(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.sdk.privacy import calibrate_noise_multiplier

    return _raised(lambda: calibrate_noise_multiplier(target_epsilon=1e-4, sample_rate=1.0, rounds=1_000_000,
                                                      delta=1e-10), ValueError)


def t_dp_off_warning(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.sdk.privacy import DPConfig, PrivacyWarning

    return _warned(lambda: DPConfig(mode="off"), PrivacyWarning)


def t_seeded_noise_warning(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.sdk.privacy import PrivacyWarning, make_noise_generator

    return _warned(lambda: make_noise_generator(secure=False, seed=0), PrivacyWarning)


def t_secagg_aborted(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.sdk.secagg import SecAggAbortedError
    from privrec.sdk.secagg.local import simulate_round

    vectors = np.zeros((4, 3))
    return _raised(lambda: simulate_round(vectors, threshold=3, dropout={"advertise_keys": 0.5}, clip_range=1.0, seed=0),
                   SecAggAbortedError)


def t_facade_needs_two(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    fed = _facade(max_rounds=5, clients=1)
    return _raised(lambda: fed.federated_round(["d0"]), ValueError)  # type: ignore[attr-defined]


def _rec(copy: Path, keys: tuple[Path, Path]) -> object:
    return _load(copy, public_key=keys[1])


def t_item_id_range(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    rec = _rec(copy, keys)
    return _raised(lambda: rec.recommend(np.zeros(4, np.float32), exclude=[3, 99]), ValueError)  # type: ignore[attr-defined]


def t_item_ids_dtype(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    rec = _rec(copy, keys)
    return _raised(lambda: rec.score(np.zeros(4, np.float32), np.array([1.0, 2.0])), TypeError)  # type: ignore[attr-defined]


def t_user_shape(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    rec = _rec(copy, keys)
    return _raised(lambda: rec.recommend(np.zeros((1, 4), np.float32)), ValueError)  # type: ignore[attr-defined]


def t_k_too_large(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    rec = _rec(copy, keys)
    return _raised(lambda: rec.recommend(np.zeros(4, np.float32), k=11), ValueError)  # type: ignore[attr-defined]


def t_empty_history(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    rec = _rec(copy, keys)
    return _raised(lambda: rec.reconstruct([]), ValueError)  # type: ignore[attr-defined]


def t_facade_item_id(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    fed = _facade(max_rounds=5, clients=1)
    client = fed.clients["d0"]  # type: ignore[attr-defined]
    return _raised(lambda: client.add_interaction(1000, 1.0), ValueError)


def t_data_missing(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.sdk.data import movielens100k_dir

    return _raised(lambda: movielens100k_dir(tmp_path), FileNotFoundError)


def t_data_corrupt(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.sdk.data import movielens100k_dir
    from privrec.sdk.data.fetch import ML100K_FILES
    from privrec.sdk.errors import DataIntegrityError

    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ML100K_FILES:
        (folder / name).write_text("not the data\n")
    return _raised(lambda: movielens100k_dir(tmp_path), DataIntegrityError)


def t_bundle_dir_not_empty(copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> str:
    from privrec.export import export_bundle

    model = ItemModel(item_embedding=np.ones((20, 4), np.float32), item_bias=np.zeros(20, np.float32))
    return _raised(lambda: export_bundle(model, copy, formats=("onnx",)), FileExistsError)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from privrec.sdk.privacy import DPConfig, PrivacyWarning
    from privrec.server_stub import ServerConfig, create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        config = ServerConfig(num_items=20, dim=3, dp=DPConfig(mode="off", clip_norm=1.0), min_participants=2,
                              enroll_close_fraction=1.0, enroll_timeout_seconds=600.0, stage_timeout_seconds=600.0)
    app = create_app(tmp_path_factory.mktemp("server") / "state.sqlite", config, admin_token="admin", tick_seconds=0)
    with TestClient(app) as client:
        yield client


def _register(http: object) -> str:
    codes = http.post("/v1/admin/enrolment-codes", json={"count": 1},  # type: ignore[attr-defined]
                      headers={"Authorization": "Bearer admin"}).json()["codes"]
    return str(http.post("/v1/devices", json={"enrolment_code": codes[0]}).json()["token"])  # type: ignore[attr-defined]


def _detail(response: object, status: int) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    return str(response.json()["detail"])  # type: ignore[attr-defined]


def t_http_code_required(server: object) -> str:
    return _detail(server.post("/v1/devices", json={}), 403)  # type: ignore[attr-defined]


def t_http_code_refused(server: object) -> str:
    codes = server.post("/v1/admin/enrolment-codes", json={"count": 1},  # type: ignore[attr-defined]
                        headers={"Authorization": "Bearer admin"}).json()["codes"]
    assert server.post("/v1/devices", json={"enrolment_code": codes[0]}).status_code == 201  # type: ignore[attr-defined]
    return _detail(server.post("/v1/devices", json={"enrolment_code": codes[0]}), 403)  # type: ignore[attr-defined]


def t_http_unknown_token(server: object) -> str:
    return _detail(server.get("/v1/model", headers={"Authorization": "Bearer " + "x" * 43}), 401)  # type: ignore[attr-defined]


def t_enrolment_too_few(server: object) -> str:
    token = _register(server)
    auth = {"Authorization": f"Bearer {token}"}
    round_id = server.get("/v1/rounds/current", headers=auth).json()["round_id"]  # type: ignore[attr-defined]
    assert server.post(f"/v1/rounds/{round_id}/checkin", json={"participate": True}, headers=auth).status_code == 200  # type: ignore[attr-defined]
    server.post(f"/v1/admin/rounds/{round_id}/advance", headers={"Authorization": "Bearer admin"})  # type: ignore[attr-defined]
    status = server.get(f"/v1/rounds/{round_id}", headers=auth).json()  # type: ignore[attr-defined]
    assert status["phase"] == "aborted", status
    return str(status["outcome"]["reason"])


def t_http_rate_limited(tmp_path: Path) -> str:
    from fastapi.testclient import TestClient

    from privrec.sdk.privacy import DPConfig, PrivacyWarning
    from privrec.server_stub import ServerConfig, create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        config = ServerConfig(num_items=20, dim=3, dp=DPConfig(mode="off", clip_norm=1.0), rate_limit_per_second=0.01,
                              rate_limit_burst=1)
    app = create_app(tmp_path / "state.sqlite", config, admin_token="admin", tick_seconds=0)
    with TestClient(app) as http:
        responses = [http.post("/v1/devices", json={}) for _ in range(3)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    assert "Retry-After" in limited[0].headers
    return str(limited[0].json()["detail"])


def t_store_tampered(tmp_path: Path) -> str:
    from privrec.runtime import EncryptedStore, StoreIntegrityError

    store = EncryptedStore(tmp_path / "store", "device-1", keystore=tmp_path / "keys")
    store.put("interactions", b"[49, 171, 180]")
    (record,) = (tmp_path / "store").glob("*.rec")
    raw = bytearray(record.read_bytes())
    raw[-1] ^= 1
    record.write_bytes(bytes(raw))
    return _raised(lambda: store.get("interactions"), StoreIntegrityError)


BUNDLE_TRIGGERS: dict[str, Callable[[Path, tuple[Path, Path], Path], str]] = {
    "public-key-required": t_public_key_required,
    "unsigned-warning": t_unsigned_warning,
    "unsigned-bundle": t_unsigned_bundle,
    "signed-by-another-key": t_signed_by_another_key,
    "signature-does-not-verify": t_signature_does_not_verify,
    "sha256-mismatch": t_sha256_mismatch,
    "size-mismatch": t_size_mismatch,
    "file-missing": t_file_missing,
    "not-a-bundle": t_not_a_bundle,
    "schema-version": t_schema_version,
    "no-artifact-for-backend": t_no_artifact_for_backend,
    "verify-not-authenticated": t_verify_not_authenticated,
    "runner-failed": t_runner_failed,
    "budget-exceeded": t_budget_exceeded,
    "epsilon-unreachable": t_epsilon_unreachable,
    "dp-off-warning": t_dp_off_warning,
    "seeded-noise-warning": t_seeded_noise_warning,
    "secagg-aborted": t_secagg_aborted,
    "facade-needs-two": t_facade_needs_two,
    "item-id-range": t_item_id_range,
    "item-ids-dtype": t_item_ids_dtype,
    "user-shape": t_user_shape,
    "k-too-large": t_k_too_large,
    "empty-history": t_empty_history,
    "facade-item-id": t_facade_item_id,
    "data-missing": t_data_missing,
    "data-corrupt": t_data_corrupt,
    "bundle-dir-not-empty": t_bundle_dir_not_empty,
}
SERVER_TRIGGERS: dict[str, Callable[[object], str]] = {
    "http-code-required": t_http_code_required,
    "http-code-refused": t_http_code_refused,
    "http-unknown-token": t_http_unknown_token,
    "enrolment-too-few": t_enrolment_too_few,
}
PLAIN_TRIGGERS: dict[str, Callable[[Path], str]] = {
    "http-rate-limited": t_http_rate_limited,
    "store-tampered": t_store_tampered,
}


# ------------------------------------------------------------------------------------------------ tests
def test_every_quoted_message_has_a_trigger_and_every_trigger_a_quote() -> None:
    quoted = set(quoted_messages())
    triggered = set(BUNDLE_TRIGGERS) | set(SERVER_TRIGGERS) | set(PLAIN_TRIGGERS)
    assert quoted == triggered, f"quoted only: {sorted(quoted - triggered)}; triggered only: {sorted(triggered - quoted)}"
    assert len(quoted) >= 30


def test_placeholders_match_only_their_message() -> None:
    pattern = as_regex("`<name>` must be in [0, <n>). Found <id> at position <pos>.")
    assert pattern.fullmatch("`exclude` must be in [0, 20). Found 99 at position 1.")
    assert not pattern.fullmatch("`exclude` must be in [1, 20). Found 99 at position 1.")


def _check(ident: str, message: str) -> None:
    quoted = quoted_messages()[ident]
    assert as_regex(quoted).fullmatch(message), f"the guide quotes\n  {quoted}\nbut privrec says\n  {message}"


@pytest.mark.parametrize("ident", sorted(BUNDLE_TRIGGERS))
def test_bundle_and_sdk_messages(ident: str, copy: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    _check(ident, BUNDLE_TRIGGERS[ident](copy, keys, tmp_path))


@pytest.mark.parametrize("ident", sorted(SERVER_TRIGGERS))
def test_server_messages(ident: str, server: object) -> None:
    _check(ident, SERVER_TRIGGERS[ident](server))


@pytest.mark.parametrize("ident", sorted(PLAIN_TRIGGERS))
def test_other_messages(ident: str, tmp_path: Path) -> None:
    _check(ident, PLAIN_TRIGGERS[ident](tmp_path))


def test_the_guide_states_the_tolerances_the_code_uses() -> None:
    from privrec.export.golden import TOLERANCE

    text = GUIDE.read_text(encoding="utf-8")
    stated = re.search(r"float32 `([0-9.e+-]+)`, int8 `([0-9.e+-]+)`", text)
    assert stated is not None, "the guide no longer states the verify tolerances"
    assert math.isclose(float(stated.group(1)), TOLERANCE["float32"])
    assert math.isclose(float(stated.group(2)), TOLERANCE["int8"])
