"""golden.json (export/golden.py): every case is validated against the manifest before any is run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bundle_edits import rehash

from privrec.export import BundleError, load_manifest
from privrec.export.golden import MAX_GOLDEN_CASES, MAX_GOLDEN_IDS, load_golden


def _edit_golden(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit golden.json and re-hash it (a consistent forgery of an unsigned bundle)."""
    path = bundle / "golden.json"
    golden = json.loads(path.read_text())
    edit(golden)
    path.write_text(json.dumps(golden))
    rehash(bundle, "golden.json")


def _case(golden: dict[str, Any], signature: str) -> dict[str, Any]:
    case: dict[str, Any] = next(c for c in golden["cases"] if c["signature"] == signature)
    return case


def test_a_fresh_golden_file_loads(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle(precision="int8")
    golden = load_golden(bundle, load_manifest(bundle))
    assert golden["precision"] == "int8" and len(golden["cases"]) == 9


def _inputs(signature: str, **values: object) -> Callable[[dict[str, Any]], None]:
    return lambda g: _case(g, signature)["inputs"].update(values)


def _outputs(signature: str, **values: object) -> Callable[[dict[str, Any]], None]:
    return lambda g: _case(g, signature)["outputs"].update(values)


# Case indices in a fresh file: score 0-2, recommend 3-5, finetune 6-8 (200 items, dim 8, K 10).
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: _case(g, "score")["inputs"].pop("item_ids"), r"`cases\[0\]\.inputs` must be an object with keys \['item_ids'"),
        (lambda g: _case(g, "finetune").pop("outputs"), r"`cases\[6\]` must be an object with keys"),
        (lambda g: _case(g, "recommend")["outputs"].pop("top_scores"), r"`cases\[3\]\.outputs` must be an object with keys"),
        (lambda g: _case(g, "score").update(signature="rank"), r"`cases\[0\]\.signature` must be one of"),
        (_inputs("score", user="x"), r"`cases\[0\]\.inputs\.user` must be a list of 8 finite numbers"),
        (_inputs("score", user=[0.0] * 7), r"`cases\[0\]\.inputs\.user` must be a list of 8"),
        (_inputs("score", item_ids=[200]), r"`cases\[0\]\.inputs\.item_ids` must be a list of 1 to 2048 item ids in \[0, 200\)"),
        (_inputs("score", item_ids=[True]), r"`cases\[0\]\.inputs\.item_ids` must be a list of 1 to 2048"),
        (_inputs("score", item_ids=[0] * (MAX_GOLDEN_IDS + 1)), r"`cases\[0\]\.inputs\.item_ids` must be a list of 1 to 2048"),
        (_outputs("score", scores=[1.0, 2.0]), r"`cases\[0\]\.outputs\.scores` must be a list of 1 finite numbers"),
        (_outputs("score", scores=[True]), r"`cases\[0\]\.outputs\.scores` must be a list of 1 finite numbers"),
        (_inputs("score", user=[0.0] * 7 + [10**400]), r"`cases\[0\]\.inputs\.user` must be a list of 8 finite numbers"),
        (_inputs("score", user=[0.0] * 7 + [None]), r"`cases\[0\]\.inputs\.user` must be a list of 8 finite numbers"),
        (_inputs("score", item_ids=[1.0]), r"`cases\[0\]\.inputs\.item_ids` must be a list of 1 to 2048"),
        (_inputs("score", item_ids=[10**30]), r"`cases\[0\]\.inputs\.item_ids` must be a list of 1 to 2048"),
        (_inputs("score", item_ids=[]), r"`cases\[0\]\.inputs\.item_ids` must be a list of 1 to 2048"),
        (_inputs("recommend", exclude=[-1]), r"`cases\[3\]\.inputs\.exclude` must be a list of 0 to 190 item ids"),
        (_inputs("recommend", exclude=[1, 1]), r"`cases\[3\]\.inputs\.exclude` must be a list of distinct item ids"),
        (_outputs("recommend", top_ids=[0] * 10), r"`cases\[3\]\.outputs\.top_ids` must be 10 distinct item ids"),
        (_inputs("finetune", lr=0), r"`cases\[6\]\.inputs\.lr` must be a finite number > 0\. Found 0\."),
        (_inputs("finetune", l2="1"), r"`cases\[6\]\.inputs\.l2` must be a finite number >= 0"),
        (_inputs("finetune", labels=[0.0]), r"`cases\[6\]\.inputs\.labels` must be numbers >= 0 with a positive sum"),
        (_outputs("finetune", loss=None), r"`cases\[6\]\.outputs\.loss` must be a finite number\. Found None\."),
        (lambda g: _case(g, "finetune").update(tolerance=1.0), r"`cases\[6\]\.tolerance` must be a number in \(0, 0\.0001\]"),
        (lambda g: g["cases"].extend(g["cases"] * 8), rf"`cases` must be a list of 1 to {MAX_GOLDEN_CASES} cases\. Found 81\."),
        (lambda g: g.update(cases=[]), r"`cases` must be a list of 1 to 64 cases\. Found 0\."),
        (lambda g: g.update(precision="int8"), r"`precision` must be 'float32' \(the manifest's precision\)"),
    ],
)
def test_malformed_cases_are_bundle_errors_naming_the_field(
    make_bundle: Callable[..., Path], edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    bundle = make_bundle()
    _edit_golden(bundle, edit)
    manifest = load_manifest(bundle)  # the forgery is self-consistent: the hashes agree
    with pytest.raises(BundleError, match=rf"^golden\.json: field {message}"):
        load_golden(bundle, manifest)


def test_unknown_top_level_keys_are_refused(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    _edit_golden(bundle, lambda g: g.update(extra=1))
    with pytest.raises(BundleError, match=r"^golden\.json: must be an object with keys \['cases', 'precision', 'schema_version"):
        load_golden(bundle, load_manifest(bundle))


def test_golden_is_hash_checked_on_the_bytes_it_parses(make_bundle: Callable[..., Path]) -> None:
    """A golden.json replaced after the manifest was loaded is refused, not used."""
    bundle = make_bundle()
    manifest = load_manifest(bundle)
    (bundle / "golden.json").write_text((bundle / "golden.json").read_text().replace('"score"', '"score" ', 1))
    with pytest.raises(BundleError, match=r"^golden\.json: size mismatch"):
        load_golden(bundle, manifest)


def test_deeply_nested_golden_is_a_bundle_error(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    (bundle / "golden.json").write_text("[" * 100_000 + "]" * 100_000)
    rehash(bundle, "golden.json")
    with pytest.raises(BundleError, match=r"^golden\.json: not valid JSON \(nesting deeper than 64 levels\)"):
        load_golden(bundle, load_manifest(bundle))
