"""The cold-start measurement (quick plan): every runtime × process has its phases, the self-test passed,
the phases add up, and the load it times is the real checked load (a tampered bundle is refused)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from privrec.benchmarks import coldstart
from privrec.export import BundleError

pytestmark = pytest.mark.xdist_group("bench")

PLAN = coldstart.ColdStartPlan(catalogs=(120,), formats=("onnx", "tflite"), warm_repeats=1, cold_repeats=1)


@pytest.fixture(scope="module")
def result() -> dict[str, object]:
    out: dict[str, object] = json.loads(json.dumps(coldstart.run_cold_start(PLAN), allow_nan=False))
    return out


def test_every_runtime_and_process_has_every_phase(result: dict[str, object]) -> None:
    rows = result["rows"]
    assert isinstance(rows, list)
    got = {(r["catalog"], r["backend"], r["process"]) for r in rows}
    assert got == {(n, b, p) for n in PLAN.catalogs for b in PLAN.backends for p in ("warm", "cold")}
    for r in rows:
        assert r["self_test_ok"] is True and r["formats"] == "onnx,tflite"
        assert r["repeats"] == (PLAN.warm_repeats if r["process"] == "warm" else PLAN.cold_repeats)
        assert min(r[f"{p}_ms"] for p in coldstart.PHASES) > 0 or r["open_ms"] <= 0  # open is a difference
        if r["process"] == "cold":  # one subprocess per median: the phases add up exactly
            assert r["total_ms"] == pytest.approx(r["load_ms"] + r["self_test_ms"] + r["first_recommend_ms"])
            assert r["import_ms"] > 0 and r["process_ms"] > r["import_ms"] + r["total_ms"]
        else:
            assert "import_ms" not in r and "process_ms" not in r
    acceptance = result["acceptance"]
    assert isinstance(acceptance, list)
    assert {(a["catalog"], a["backend"]) for a in acceptance} == {(max(PLAN.catalogs), b) for b in PLAN.backends}
    for a in acceptance:
        assert a["met"] == (a["measured_ms"] <= PLAN.target_ms)
    md = coldstart.cold_start_markdown(result)
    assert "## Cold start" in md and "| 120 | litert | cold |" in md


def test_the_timed_load_is_the_checked_load(tmp_path: Path) -> None:
    bundle, key, note = coldstart._export(120, PLAN, tmp_path)
    assert note == ""
    user = np.ones(PLAN.dim, np.float32)
    assert coldstart.measure_phases(bundle, "onnxruntime", key, user)["self_test_ok"] is True
    data = bytearray((bundle / "model.tflite").read_bytes())
    data[-1] ^= 1  # a file the onnxruntime backend never opens: still hashed at load
    (bundle / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"^model\.tflite: sha256 mismatch"):
        coldstart.measure_phases(bundle, "onnxruntime", key, user)


def test_refresh_replaces_only_the_cold_start_section(tmp_path: Path) -> None:
    before = "# privrec bench: latency\n\n## Targets\n\nkept as measured\n\n"
    (tmp_path / "report.md").write_text(before + "## Cold start: signed bundle on disk → first recommendation\n\nold\n")
    (tmp_path / "result.json").write_text(json.dumps({"rows": [1, 2], "cold_start": {"rows": []}}))
    coldstart.refresh_report(tmp_path, PLAN)
    report = (tmp_path / "report.md").read_text()
    assert report.startswith(before + "## Cold start: signed bundle on disk") and "\nold\n" not in report
    assert "load average (1, 5, 15 min)" in report and "| 120 | litert | warm |" in report
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["rows"] == [1, 2] and saved["cold_start"]["measured"]["utc"].endswith("UTC")
    with pytest.raises(ValueError, match=r"has no section starting '## Cold start"):
        (tmp_path / "report.md").write_text(before)
        coldstart.refresh_report(tmp_path, PLAN)
