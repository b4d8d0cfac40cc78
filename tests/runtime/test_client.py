"""The httpx client against a live server on 127.0.0.1."""

from __future__ import annotations

import io
import re
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server_stub"))
from srvkit import ADMIN, small_config

from privrec.runtime.client import ServerClient, ServerError
from privrec.server_stub import create_app
from privrec.testing.servers import free_port, serve_in_thread


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(tmp_path_factory.mktemp("srv") / "server.db", small_config(), admin_token=ADMIN, tick_seconds=0)
    with serve_in_thread(app) as url:
        yield url


def test_register_model_and_bundle(server_url: str) -> None:
    with ServerClient(server_url) as client:
        (code,) = client.admin_enrolment_codes(1, ADMIN)
        device_id = client.register(code)
        assert device_id >= 1 and client.token is not None
        info = client.model_info()
        assert (info["version"], info["num_items"], info["dim"], info["vector_length"]) == (0, 20, 3, 80)
        version, data = client.download_bundle()
        assert version == 0 and len(data) == info["bundle_bytes"]
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = set(tar.getnames())
        assert {"manifest.json", "weights.safetensors", "model.finetune.onnx"} <= names
        assert client.bytes_received >= len(data)


def test_errors_carry_the_server_detail(server_url: str) -> None:
    with ServerClient(server_url, token="wrong") as client:
        with pytest.raises(ServerError, match=r"HTTP 401: Unknown bearer token") as err:
            client.model_info()
        assert err.value.status == 401
    with ServerClient(server_url) as client:
        with pytest.raises(ServerError, match=re.escape("HTTP 403: Registration refused: unknown enrolment code.")):
            client.register("x" * 43)
        client.register(client.admin_enrolment_codes(1, ADMIN)[0])
        with pytest.raises(ServerError, match=re.escape("HTTP 404: Unknown round 'nope'.")):
            client.status("nope")
        with pytest.raises(ServerError, match=re.escape("HTTP 401: A valid admin bearer token is required.")):
            client.admin_open_round("not-admin")


def test_unreachable_server_is_retried_then_raises() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ServerClient(url, retry_seconds=0.3) as client:
        t0 = time.monotonic()
        with pytest.raises(httpx.ConnectError):
            client.register()
        assert time.monotonic() - t0 >= 0.3


def test_bad_url() -> None:
    with pytest.raises(ValueError, match="`base_url` must be an http"):
        ServerClient("127.0.0.1:80")


def test_tls_server_needs_a_trusted_ca(tmp_path: Path) -> None:
    """Over TLS: a client that trusts the server's CA works; one that does not is refused before any request."""
    from privrec.testing.servers import ServerProcess
    from privrec.testing.tls import make_test_ca

    tls = make_test_ca(tmp_path / "tls")
    with ServerProcess(tmp_path / "s.db", small_config(), admin_token=ADMIN, tls=tls) as proc:
        with ServerClient(proc.url, verify=str(tls.ca_cert)) as client:
            client.register(client.admin_enrolment_codes(1, ADMIN)[0])
            assert client.model_info()["version"] == 0
        with ServerClient(proc.url, retry_seconds=0.0) as untrusting, pytest.raises(httpx.ConnectError, match="CERTIFICATE"):
            untrusting.model_info()
