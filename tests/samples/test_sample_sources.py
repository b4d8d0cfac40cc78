"""The Android app's Kotlin and the Swift package's sources parse without syntax errors.

Neither is compiled on this machine: the app needs the Android SDK and Kotlin 2.0, the Swift code a Swift
compiler. The tree-sitter grammars of both languages (PyPI ``tree-sitter``, ``tree-sitter-kotlin``,
``tree-sitter-swift``) catch a syntax slip before it ships. This is a parse, not a type check: a wrong name
or type still needs Android Studio or Xcode. The core's Kotlin is also compiled by ``kotlinc`` in
test_android_core.py; parsing it here as well costs milliseconds.

Without the grammar packages the tests skip, unless ``PRIVREC_REQUIRE_KOTLIN=1`` (what ``make test`` sets),
where they fail.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Directories that hold build outputs, never sources.
SKIP_DIRS = {"build", ".build", ".gradle", ".swiftpm", "DerivedData"}
SOURCES = {
    "kotlin": ((ROOT / "android_sample",), (".kt", ".kts")),
    "swift": ((ROOT / "ios_sample", ROOT / "Package.swift"), (".swift",)),
}
# Files each glob must find, so an empty or misdirected glob cannot pass.
REQUIRED = {
    "kotlin": (
        "android_sample/app/src/main/kotlin/dev/privrec/sample/RecommenderViewModel.kt",
        "android_sample/core/src/main/kotlin/dev/privrec/core/Reconstruction.kt",
        "android_sample/settings.gradle.kts",
    ),
    "swift": (
        "Package.swift",
        "ios_sample/PrivRecKit/Package.swift",
        "ios_sample/PrivRecKit/Sources/PrivRecKit/PrivRecSession.swift",
        "ios_sample/PrivRecKit/Sources/PrivRecKit/Reconstruction.swift",
        "ios_sample/PrivRecKit/Tests/PrivRecKitTests/ReconstructionTests.swift",
    ),
}
BROKEN = {"kotlin": b"fun f(x: Int {\n    return x\n}\n", "swift": b"func f(x: Int {\n    return x\n}\n"}


def _parser(language: str) -> Any:
    """A tree-sitter parser for ``language``; skips (or fails under PRIVREC_REQUIRE_KOTLIN=1) without the grammars."""
    try:
        tree_sitter = importlib.import_module("tree_sitter")
        grammar = importlib.import_module(f"tree_sitter_{language}")
    except ImportError as exc:
        reason = (
            f"tree-sitter grammar missing ({exc.name}): "
            "`pip install tree-sitter tree-sitter-kotlin tree-sitter-swift` into the venv."
        )
        if os.environ.get("PRIVREC_REQUIRE_KOTLIN") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return tree_sitter.Parser(tree_sitter.Language(grammar.language()))


def _sources(language: str) -> list[Path]:
    roots, suffixes = SOURCES[language]
    found: list[Path] = []
    for root in roots:
        candidates = [root] if root.is_file() else root.rglob("*")
        found.extend(
            p for p in candidates
            if p.is_file() and p.name.endswith(suffixes) and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
        )
    return sorted(found)


def _syntax_errors(parser: Any, source: bytes) -> list[str]:
    """Every ERROR and MISSING node of the parse, as ``line:column: what`` (1-based)."""
    problems: list[str] = []
    stack = [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        line, column = node.start_point[0] + 1, node.start_point[1] + 1
        if node.is_missing:
            problems.append(f"{line}:{column}: missing {node.type!r}")
        elif node.is_error:
            text = source[node.start_byte:node.end_byte].decode("utf-8", "replace").splitlines()
            problems.append(f"{line}:{column}: cannot parse {text[0][:60]!r}" if text else f"{line}:{column}: cannot parse")
        elif node.has_error:
            stack.extend(reversed(node.children))
    return sorted(problems, key=lambda p: tuple(int(n) for n in p.split(":")[:2]))


@pytest.mark.parametrize("language", sorted(SOURCES))
def test_sources_parse_without_syntax_errors(language: str) -> None:
    parser = _parser(language)
    files = _sources(language)
    missing = [r for r in REQUIRED[language] if ROOT / r not in files]
    assert not missing, f"the {language} glob did not find {missing}"
    problems = {
        path.relative_to(ROOT).as_posix(): errors
        for path in files
        if (errors := _syntax_errors(parser, path.read_bytes()))
    }
    report = "\n".join(f"{path}:{error}" for path, errors in problems.items() for error in errors)
    assert not problems, f"{len(problems)} of {len(files)} {language} files do not parse:\n{report}"


@pytest.mark.parametrize("language", sorted(SOURCES))
def test_the_parser_reports_a_syntax_error(language: str) -> None:
    """The check can fail: an unclosed parameter list is reported with its line."""
    problems = _syntax_errors(_parser(language), BROKEN[language])
    assert problems, f"the {language} grammar accepted {BROKEN[language]!r}"
    assert all(p.split(":")[0] in {"1", "2", "3"} for p in problems), problems
