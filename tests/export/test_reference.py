"""The numpy reference (export/reference.py) and golden.json (export/golden.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.export import load_manifest, load_reference
from privrec.export.golden import MAX_GOLDEN_IDS, TOLERANCE, case_arrays, load_golden
from privrec.export.reference import topk_stable
from privrec.export.verify import max_abs_err
from privrec.sdk.model import ItemModel
from privrec.sdk.quantize import quantize_int8
from privrec.sdk.reconstruct import FinetuneConfig, finetune_reference


def test_reference_matches_the_model_float32(make_bundle: Callable[..., Path], small_model: ItemModel) -> None:
    ref = load_reference(make_bundle())
    np.testing.assert_array_equal(ref.item_embedding, small_model.item_embedding.astype(np.float64))
    u = np.linspace(-1, 1, 8).astype(np.float32)
    np.testing.assert_allclose(ref.score(u, np.arange(200)), small_model.score(u), atol=1e-6)
    ids, _ = ref.recommend(u, np.zeros(200, np.float32))
    assert ids.tolist() == small_model.recommend(u, 10)[0].tolist()


def test_int8_reference_is_the_dequantized_table(make_bundle: Callable[..., Path], small_model: ItemModel) -> None:
    ref = load_reference(make_bundle(precision="int8"))
    deq = quantize_int8(small_model).dequantize()
    np.testing.assert_array_equal(ref.item_embedding, deq.item_embedding.astype(np.float64))
    np.testing.assert_array_equal(ref.item_bias, deq.item_bias.astype(np.float64))


def test_reference_finetune_is_the_sdk_definition(make_bundle: Callable[..., Path], small_model: ItemModel) -> None:
    ref = load_reference(make_bundle(finetune=None))
    ids = np.array([3, 9, 27])
    labels = np.array([1.0, 0.0, 2.0])
    out, loss = ref.finetune(np.zeros(8, np.float32), ids, labels, 1.0, 1e-3)
    want, want_loss = finetune_reference(
        np.zeros(8), small_model.item_embedding, small_model.item_bias, ids, labels, lr=1.0, l2=1e-3,
        steps=FinetuneConfig().steps,  # finetune=None exports the default steps
    )
    np.testing.assert_array_equal(out, want)
    assert loss == want_loss


def test_topk_ties_go_to_the_lower_index() -> None:
    scores = np.array([1.0, 3.0, 3.0, -np.inf, 3.0, 2.0])
    assert topk_stable(scores, 4).tolist() == [1, 2, 4, 5]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=40), st.integers(1, 40))
def test_topk_is_sort_by_score_then_index(values: list[int], k: int) -> None:
    scores = np.array(values, np.float64)
    expected = sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]
    assert topk_stable(scores, k).tolist() == expected


def test_golden_cases_pass_against_the_reference(make_bundle: Callable[..., Path]) -> None:
    for precision in ("float32", "int8"):
        bundle = make_bundle(precision=precision)
        ref = load_reference(bundle)
        golden = load_golden(bundle, load_manifest(bundle))
        assert golden["precision"] == precision
        sigs = [c["signature"] for c in golden["cases"]]
        assert sigs.count("score") == sigs.count("recommend") == sigs.count("finetune") == 3
        for case in golden["cases"]:
            assert case["tolerance"] == TOLERANCE[precision]
            a = case_arrays(case, ref.num_items)
            if case["signature"] == "score":
                assert max_abs_err(np.array(case["outputs"]["scores"]), ref.score(a["user"], a["item_ids"])) == 0
            elif case["signature"] == "recommend":
                ids, scores = ref.recommend(a["user"], a["mask"])
                assert case["outputs"]["top_ids"] == ids.tolist()
                assert max_abs_err(np.array(case["outputs"]["top_scores"]), scores) == 0
                assert not set(case["inputs"]["exclude"]) & set(ids.tolist())
            else:
                out, loss = ref.finetune(a["user"], a["item_ids"], a["labels"], a["lr"][0], a["l2"][0])
                assert max_abs_err(np.array(case["outputs"]["user_out"]), out) == 0
                assert case["outputs"]["loss"] == loss


def test_golden_covers_n_and_m_of_one_and_the_full_catalog(make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle()
    golden = json.loads((bundle / "golden.json").read_text())
    ref = load_reference(bundle)
    for sig in ("score", "finetune"):
        sizes = sorted(len(c["inputs"]["item_ids"]) for c in golden["cases"] if c["signature"] == sig)
        assert sizes[0] == 1 and sizes[-1] == 200
    excludes = [c["inputs"]["exclude"] for c in golden["cases"] if c["signature"] == "recommend"]
    assert excludes[0] == [] and all(len(e) > 0 for e in excludes[1:])
    # The second recommend case excludes that user's own top items, so the exclusion changes the answer.
    case = [c for c in golden["cases"] if c["signature"] == "recommend"][1]
    unmasked, _ = ref.recommend(np.array(case["inputs"]["user"], np.float32), np.zeros(200, np.float32))
    assert set(case["inputs"]["exclude"]) <= set(unmasked.tolist())
    assert case["outputs"]["top_ids"] != unmasked.tolist()


def test_golden_caps_large_catalogs(make_bundle: Callable[..., Path], make_model: Callable[..., ItemModel]) -> None:
    bundle = make_bundle(make_model(5000, 4))
    golden = load_golden(bundle, load_manifest(bundle))
    full = max(len(c["inputs"]["item_ids"]) for c in golden["cases"] if c["signature"] == "score")
    assert full == MAX_GOLDEN_IDS
    ids = next(c["inputs"]["item_ids"] for c in golden["cases"] if len(c["inputs"].get("item_ids", [])) == full)
    assert ids[0] == 0 and ids[-1] == 4999
