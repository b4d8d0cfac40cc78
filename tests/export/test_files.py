"""Bundle files on disk (export/files.py): the path rules, no symbolic links, strict and bounded JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from privrec.export import BundleError
from privrec.export.files import (
    MAX_JSON_DEPTH,
    bundle_path,
    check_relpath,
    parse_json,
    path_problem,
    read_bundle_file,
)


@pytest.mark.parametrize(
    "rel",
    [
        "weights.safetensors",
        "model.score.onnx",
        "Recommender.mlpackage/Data/com.apple.CoreML/weights/weight.bin",
        "a b/ü.json",
    ],
)
def test_valid_paths(rel: str) -> None:
    assert path_problem(rel) is None
    assert check_relpath(rel, "files") == rel


@pytest.mark.parametrize(
    ("rel", "problem"),
    [
        ("/etc/passwd", "an absolute path"),
        ("../outside.onnx", "not normalised"),
        ("a/../../b", "not normalised"),
        ("a//b", "not normalised"),
        ("./a", "not normalised"),
        ("a/", "not normalised"),
        ("a\\..\\b", "backslash, colon or control character"),
        ("C:/Windows/evil.onnx", "backslash, colon or control character"),
        ("a\x00b", "backslash, colon or control character"),
        ("a\nb", "backslash, colon or control character"),
        ("", "a path of 0 characters"),
        ("x" * 1025, "a path of 1025 characters"),
        (7, "a int, not a path string"),
        (None, "a NoneType, not a path string"),
    ],
)
def test_invalid_paths_name_the_field_and_the_problem(rel: object, problem: str) -> None:
    assert problem in (path_problem(rel) or "")
    with pytest.raises(BundleError, match=r"^manifest\.json: field `artifacts\.onnx\.details\.graphs\.score` holds "):
        check_relpath(rel, "artifacts.onnx.details.graphs.score")


def test_a_symlinked_file_or_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.bin").write_bytes(b"a")
    outside = tmp_path / "outside"
    (outside / "pkg").mkdir(parents=True)
    (outside / "secret.bin").write_bytes(b"secret")
    (outside / "pkg" / "b.bin").write_bytes(b"b")
    assert bundle_path(root, "pkg/a.bin") == root / "pkg" / "a.bin"
    assert bundle_path(root, "pkg", directory=True) == root / "pkg"

    os.symlink(outside / "secret.bin", root / "link.bin")
    with pytest.raises(BundleError, match=r"^link\.bin: 'link\.bin' is a symbolic link; a bundle holds regular files only"):
        bundle_path(root, "link.bin")
    os.symlink(outside / "pkg", root / "linked_pkg")
    with pytest.raises(BundleError, match=r"^linked_pkg/b\.bin: 'linked_pkg' is a symbolic link"):
        read_bundle_file(root, "linked_pkg/b.bin", max_bytes=10)
    os.symlink(root / "pkg" / "a.bin", root / "inner_link.bin")  # even a link that stays inside
    with pytest.raises(BundleError, match=r"'inner_link\.bin' is a symbolic link"):
        bundle_path(root, "inner_link.bin")


def test_missing_directories_and_oversized_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"12345")
    with pytest.raises(BundleError, match=r"^nope/x\.bin: listed in manifest\.json but missing from the bundle\.$"):
        bundle_path(tmp_path, "nope/x.bin")
    with pytest.raises(BundleError, match=r"^file/x\.bin: 'file' is not a directory\."):
        bundle_path(tmp_path, "file/x.bin")
    with pytest.raises(BundleError, match=r"^file: must be a directory"):
        bundle_path(tmp_path, "file", directory=True)
    (tmp_path / "dir").mkdir()
    with pytest.raises(BundleError, match=r"^dir: must be a regular file"):
        bundle_path(tmp_path, "dir")
    assert read_bundle_file(tmp_path, "file", max_bytes=5) == b"12345"
    with pytest.raises(BundleError, match=r"^file: 5 bytes is more than the 4"):
        read_bundle_file(tmp_path, "file", max_bytes=4)


def test_json_is_strict_and_bounded() -> None:
    assert parse_json(b'{"a": [1, 2.5, null]}', "golden.json:") == {"a": [1, 2.5, None]}
    nested = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert isinstance(parse_json(nested, "x:"), list)
    for depth in (MAX_JSON_DEPTH + 1, 100_000):  # the second overflows Python's own recursion limit
        deep = b"[" * depth + b"]" * depth
        with pytest.raises(BundleError, match=rf"^manifest\.json: not valid JSON \(nesting deeper than {MAX_JSON_DEPTH} "):
            parse_json(deep, "manifest.json:")
    deep_object = json.dumps({"privacy": {"x": [[{"y": 1}]]}}).encode()
    assert parse_json(deep_object, "m:")["privacy"]["x"][0][0]["y"] == 1
    with pytest.raises(BundleError, match=r"^m: not valid JSON \(NaN is not JSON"):
        parse_json(b'{"epsilon": NaN}', "m:")
    with pytest.raises(BundleError, match=r"^m: not valid JSON \(-Infinity is not JSON"):
        parse_json(b"[-Infinity]", "m:")
    with pytest.raises(BundleError, match=r"^m: not valid JSON \(key 'epsilon' appears twice in one object\)"):
        parse_json(b'{"epsilon": 1.0, "epsilon": 0.1}', "m:")
    with pytest.raises(BundleError, match=r"^m: not UTF-8"):
        parse_json(b'{"title": "\xff"}', "m:")
