"""`privrec data validate`, `privrec train --data`, `privrec evaluate` on an app's own file: each bad file is one
`error:` line and exit code 2; a good CSV trains, evaluates and exports a bundle carrying the app's item ids."""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from privrec.sdk.data import synthetic_interactions

HEADER = "user_id,item_id,timestamp,rating\n"
GOOD = HEADER + "u1,a,1,5\nu1,b,2,4\nu1,c,3,3\nu2,a,5,5\nu2,c,6,1\n"


def _cli(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from privrec.cli import main

    monkeypatch.delenv("PRIVREC_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["privrec", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()
    out, err = capsys.readouterr()
    code = exit_.value.code
    return (0 if code is None else int(code)), out, err


BAD_FILES = {
    "missing column": ("d.csv", "uid,item_id\nu1,a\n", [],
                       "column 'user_id' (--user-col) missing; the file has columns 'uid', 'item_id'"),
    "bad timestamp": ("d.csv", HEADER + "u1,a,noon,5\n", [],
                      "1 row has a time that is neither a number (seconds since the epoch) nor an ISO 8601 timestamp"),
    "empty user": ("d.csv", HEADER + ",a,1,5\nu1,b,2,5\n", [], "1 row has an empty user id in column 'user_id'"),
    "bad rating": ("d.csv", HEADER + "u1,a,1,great\n", [], "1 row has a rating that is not a number"),
    "duplicates": ("d.csv", HEADER + "u1,a,1,5\nu1,a,1,5\nu1,a,1,4\n", [],
                   "2 duplicate rows (same user, item and time; first: user 'u1', item 'a'). Pass --dedupe"),
    "item not in item file": ("d.csv", GOOD, ["--items", "items.csv"],
                              "2 item ids of d.csv are not in the item file (first: 'b')"),
    "unsupported format": ("d.xlsx", "x", [], "cannot tell the format from the file name"),
    "explicit column absent": ("d.csv", GOOD, ["--time-col", "when"], "column 'when' (--time-col) missing"),
}


@pytest.mark.parametrize("command", ["validate", "train"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_an_error_line_and_exit_2(case: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    name, text, extra, expected = BAD_FILES[case]
    (tmp_path / name).write_text(text)
    (tmp_path / "items.csv").write_text("item_id,title\na,Alpha\n")
    monkeypatch.chdir(tmp_path)
    argv = (["data", "validate", name] if command == "validate" else ["train", "--data", name, "--out", "run"]) + extra
    code, out, err = _cli(argv, monkeypatch, capsys)
    assert code == 2, (out, err)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "run").exists()


def test_missing_file_is_an_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["data", "validate", str(tmp_path / "nope.csv")], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: ") and "nope.csv does not exist" in err and out == ""


def test_validate_json_is_one_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.csv").write_text(GOOD)
    (tmp_path / "items.csv").write_text("item_id,title,genres\na,Alpha,x|y\nb,Beta,y\nc,Gamma,\nd,Delta (new),z\n")
    code, out, _ = _cli(["data", "validate", str(tmp_path / "d.csv"), "--items", str(tmp_path / "items.csv"), "--json"],
                        monkeypatch, capsys)
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True and report["format"] == "csv"
    s = report["summary"]
    assert (s["users"], s["items"], s["items_with_interactions"], s["interactions"], s["num_features"]) == (2, 4, 3, 5, 3)
    assert [p["code"] for p in report["problems"]] == ["items_without_interactions"]
    assert report["problems"][0]["severity"] == "warning"
    assert len(report["data"]["sha256"]) == 64

    (tmp_path / "bad.csv").write_text(HEADER + "u1,a,x,5\n")
    code, out, _ = _cli(["data", "validate", str(tmp_path / "bad.csv"), "--json"], monkeypatch, capsys)
    assert code == 2
    report = json.loads(out)
    assert report["ok"] is False and report["summary"] is None
    assert [p["code"] for p in report["problems"]] == ["bad_timestamps"]


def test_validate_prints_summary_and_dedupe_fixes_duplicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.csv").write_text(GOOD + "u1,a,1,5\n")
    code, _, err = _cli(["data", "validate", str(tmp_path / "d.csv")], monkeypatch, capsys)
    assert code == 2 and "1 duplicate row" in err
    code, out, _ = _cli(["data", "validate", str(tmp_path / "d.csv"), "--dedupe"], monkeypatch, capsys)
    assert code == 0
    assert "interactions" in out and "density" in out and "history length" in out
    assert "1 duplicate rows (same user, item and time) dropped by --dedupe." in out


def _app_files(folder: Path) -> tuple[Path, Path, int]:
    """A shop-like CSV (string user and item ids, column names of its own), an item file listing 5 new items
    too, and how many items of the item file have no interaction."""
    data = synthetic_interactions(100, 140, seed=3, per_user=(8, 20))
    rows = [f"shopper-{u},sku-{i:04d},{t},{1 + (u + i) % 5}" for u, i, t in zip(data.users, data.items, data.timestamps,
                                                                               strict=True)]
    (folder / "orders.csv").write_text("customer,sku,ts,stars\n" + "\n".join(rows) + "\n")
    items = [f"sku-{i:04d},Product {i},{'shoes' if i % 3 else 'hats'}|{'red' if i % 2 else 'blue'}" for i in range(145)]
    (folder / "catalog.csv").write_text("sku,title,categories\n" + "\n".join(items) + "\n")
    return folder / "orders.csv", folder / "catalog.csv", 145 - int(np.unique(data.items).size)


def test_train_evaluate_export_on_an_app_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    orders, catalog, n_cold = _app_files(tmp_path)
    (tmp_path / "quick.json").write_text(json.dumps({"dim": 8, "epochs": 3}))
    cols = ["--user-col", "customer", "--item-col", "sku", "--time-col", "ts", "--rating-col", "stars"]
    run = tmp_path / "run"
    monkeypatch.setattr("privrec.sdk.run.DENSE_WARN_GB", 0.0)  # the dense-matrix warning, at this size
    with pytest.warns(UserWarning, match=r"dense users × items label matrices: 100 × 145 float32 is 0.0 GB each"):
        code, out, err = _cli(["train", "--data", str(orders), "--items", str(catalog), *cols,
                               "--config", str(tmp_path / "quick.json"), "--out", str(run)], monkeypatch, capsys)
    assert code == 0, err[-2000:]
    assert f"warning: {catalog}: {n_cold} items of the item file have no interactions in orders.csv" in err
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["sha256"] == hashlib.sha256(orders.read_bytes()).hexdigest()
    assert config["data"]["columns"]["user"] == "customer" and config["cold_start_items"] >= n_cold >= 5
    assert config["train"]["item_cold_start"] == "features"

    code, out, _ = _cli(["evaluate", str(run), "--json"], monkeypatch, capsys)
    assert code == 0
    metrics = json.loads(out)
    assert metrics["users"] == 100 and 0.0 <= metrics["full"]["hr@10"] <= 1.0
    assert metrics == json.loads((run / "metrics.json").read_text()) | {"run": metrics["run"]}

    bundle = tmp_path / "bundle"
    code, _, err = _cli(["export", str(run), "--out", str(bundle), "--formats", "onnx"], monkeypatch, capsys)
    assert code == 0, err[-2000:]
    manifest = json.loads((bundle / "manifest.json").read_text())
    items = manifest["items"]
    assert len(items) == manifest["num_items"] == 145
    assert items[0]["id"] == "sku-0000" and items[0]["title"] == "Product 0"
    assert items[144]["id"] == "sku-0144" and items[144]["title"] == "Product 144"  # a cold item ships too

    # the cold items' rows come from their features: items sharing features share rows
    from safetensors.numpy import load_file

    w = load_file(str(run / "weights.safetensors"))
    V = w["item_embedding"]
    np.testing.assert_allclose(V[140], V[142], atol=1e-6)  # new items 140 and 142 are both 'shoes|blue'
    assert not np.allclose(V[140], V[141])  # new item 141 is 'hats|red'

    # the file changed: evaluate refuses it instead of scoring another split
    moved = tmp_path / "archive" / "orders-2024.csv"
    moved.parent.mkdir()
    moved.write_bytes(orders.read_bytes())
    orders.write_text(orders.read_text() + "shopper-0,sku-0001,99999999999,5\n")
    code, out, err = _cli(["evaluate", str(run), "--json"], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "the file changed" in err
    # the same file moved elsewhere: --data points at it (the run's column settings are used)
    code, out, _ = _cli(["evaluate", str(run), "--json", "--data", str(moved)], monkeypatch, capsys)
    assert code == 0 and json.loads(out)["full"] == metrics["full"]
    code, out, err = _cli(["evaluate", str(run), "--json", "--data", str(orders)], monkeypatch, capsys)
    assert code == 2 and out == "" and "the file changed" in err


def test_item_file_with_its_own_id_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.csv").write_text(GOOD)
    (tmp_path / "items.csv").write_text("product,title\na,Alpha\nb,Beta\nc,Gamma\n")
    argv = ["data", "validate", str(tmp_path / "d.csv"), "--items", str(tmp_path / "items.csv"), "--json"]
    code, out, _ = _cli(argv, monkeypatch, capsys)
    assert code == 2 and "column 'item_id' (--items-id-col) missing; the item file has columns 'product', 'title'" in out
    code, out, _ = _cli([*argv, "--items-id-col", "product"], monkeypatch, capsys)
    assert code == 0 and json.loads(out)["problems"] == []


README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_your_own_data_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The README's four commands run as printed, on files with the columns it shows (plus a quick training
    config and ONNX only, for speed)."""
    import re
    import shlex

    section = README.read_text().split("\n## Your own data\n", 1)[1].split("\n## ", 1)[0]
    text_block = re.findall(r"```text\n(.*?)```", section, flags=re.S)[0].splitlines()
    commands = [c for c in re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0].splitlines() if c.strip()]
    assert len(commands) == 4 and all(c.startswith("privrec ") for c in commands)
    orders_header, catalog_header = text_block[1].split()
    assert text_block[0].split()[:2] == ["orders.csv", "catalog.csv"]
    user_col, item_col, *_ = orders_header.split(",")
    data = synthetic_interactions(80, 130, seed=5, per_user=(6, 15))
    rows = [f"c-{u:04d},sku-{i:04d},{1_700_000_000 + t},{1 + (u * i) % 5}"
            for u, i, t in zip(data.users, data.items, data.timestamps, strict=True)]
    (tmp_path / "orders.csv").write_text(orders_header + "\n" + "\n".join(rows) + "\n")
    cats = ("shoes|outdoor", "hats", "bags|outdoor")
    (tmp_path / "catalog.csv").write_text(catalog_header + "\n" + "\n".join(
        f"sku-{i:04d},Product {i},{cats[i % 3]}" for i in range(132)) + "\n")
    (tmp_path / "quick.json").write_text(json.dumps({"dim": 8, "epochs": 2}))
    monkeypatch.chdir(tmp_path)
    outputs = []
    for command in commands:
        argv = shlex.split(command)[1:]
        argv += {"train": ["--config", "quick.json"], "export": ["--formats", "onnx"]}.get(argv[0], [])
        code, out, err = _cli(argv, monkeypatch, capsys)
        assert code == 0, (command, err[-2000:])
        outputs.append(out)
    assert (user_col, item_col) == ("customer", "sku")
    assert json.loads(outputs[2])["users"] == 80
    manifest = json.loads((tmp_path / "bundles" / "shop" / "manifest.json").read_text())
    assert [i["id"] for i in manifest["items"]][:2] == ["sku-0000", "sku-0001"] and len(manifest["items"]) == 132


def test_federated_train_on_an_app_csv_ties_the_table_to_its_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    orders, catalog, _ = _app_files(tmp_path)
    (tmp_path / "fed.json").write_text(json.dumps({"rounds": 2, "eval_every": 2, "dim": 8, "item_features": "genre",
                                                   "target_epsilon": None, "noise_multiplier": 1.0}))
    run = tmp_path / "run"
    argv = ["train", "--mode", "federated", "--data", str(orders), "--items", str(catalog), "--user-col", "customer",
            "--item-col", "sku", "--time-col", "ts", "--rating-col", "stars", "--config", str(tmp_path / "fed.json"),
            "--out", str(run)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 2-round DP run may warn about its settings: not what this test checks
        code, _, err = _cli(argv, monkeypatch, capsys)
    assert code == 0, err[-2000:]
    config = json.loads((run / "config.json").read_text())
    assert config["mode"] == "federated" and config["data"]["path"] == str(orders.resolve())
    assert config["layout"]["num_features"] == 4 and config["layout"]["num_items"] == 145  # shoes, hats, red, blue
    code, out, _ = _cli(["evaluate", str(run), "--json"], monkeypatch, capsys)
    assert code == 0 and json.loads(out)["full"] == json.loads((run / "metrics.json").read_text())["full"]
