"""Bundle files on disk: the path rules every reader enforces, and reading a file under them.

A path in a manifest is relative, ``/``-separated and normalised: no empty, ``.`` or ``..`` segment, no
leading ``/``, no backslash, colon or control character. It therefore names a file inside the bundle on
every platform the readers run on (Python, Kotlin, Swift). Reading a listed file refuses a symbolic link
anywhere on the way (the file itself, or a directory above it inside the bundle) and anything that is
not a regular file, so a link re-hashed into the manifest cannot make a reader open a file outside the
bundle. Bundle JSON is parsed strictly (UTF-8, no ``NaN``/``Infinity``, no repeated key) with its nesting
bounded, so hostile input fails with :class:`~privrec.export.errors.BundleError`, never ``RecursionError``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from .errors import BundleError

__all__ = [
    "MANIFEST_NAME",
    "MAX_JSON_DEPTH",
    "MAX_MANIFEST_BYTES",
    "MAX_PATH_LENGTH",
    "RESERVED_NAMES",
    "SIGNATURE_NAME",
    "bundle_path",
    "check_relpath",
    "open_bundle_file",
    "parse_json",
    "path_problem",
    "read_bundle_file",
    "read_manifest_bytes",
]

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
RESERVED_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})
# Deep enough for any manifest privrec writes (the privacy ledger is the deepest field, about 5 levels),
# shallow enough that no reader (Python's json, Kotlin's recursive parser, Swift's JSONDecoder) can run
# out of stack on hostile input.
MAX_JSON_DEPTH = 64
MAX_PATH_LENGTH = 1024
_FORBIDDEN_CHARS = frozenset("\\:") | frozenset(chr(c) for c in (*range(0x20), 0x7F))
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def path_problem(rel: object) -> str | None:
    """Why ``rel`` is not a valid bundle path, or None when it is one."""
    if not isinstance(rel, str):
        return f"a {type(rel).__name__}, not a path string"
    if not rel or len(rel) > MAX_PATH_LENGTH:
        return f"a path of {len(rel)} characters (1 to {MAX_PATH_LENGTH} allowed)"
    if rel.startswith("/"):
        return "an absolute path"
    if not _FORBIDDEN_CHARS.isdisjoint(rel):
        return "a path with a backslash, colon or control character"
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return "a path that is not normalised (an empty, '.' or '..' segment)"
    return None


def check_relpath(rel: object, field: str) -> str:
    """``rel`` when it is a valid bundle path; otherwise :class:`BundleError` naming ``manifest.json`` and ``field``."""
    problem = path_problem(rel)
    if problem is not None:
        raise BundleError(
            f"{MANIFEST_NAME}: field `{field}` holds {rel!r}, {problem}: every path in a bundle is relative, "
            "normalised and inside the bundle."
        )
    return str(rel)


def bundle_path(root: Path, rel: str, *, directory: bool = False) -> Path:
    """``root / rel`` after checking, without following links, that every component exists inside the
    bundle, none is a symbolic link, and the last one is a regular file (or a directory with ``directory``).

    Raises :class:`BundleError` naming ``rel``.
    """
    path = Path(root)
    parts = rel.split("/")
    mode = 0
    for i, part in enumerate(parts):
        path = path / part
        shown = "/".join(parts[: i + 1])
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise BundleError(f"{rel}: listed in {MANIFEST_NAME} but missing from the bundle.") from None
        if stat.S_ISLNK(mode):
            raise BundleError(
                f"{rel}: {shown!r} is a symbolic link; a bundle holds regular files only (a link could point "
                "outside the bundle)."
            )
        if i < len(parts) - 1 and not stat.S_ISDIR(mode):
            raise BundleError(f"{rel}: {shown!r} is not a directory.")
    if directory and not stat.S_ISDIR(mode):
        raise BundleError(f"{rel}: must be a directory of the bundle. Found another kind of file.")
    if not directory and not stat.S_ISREG(mode):
        raise BundleError(f"{rel}: must be a regular file. Found a directory or a device.")
    return path


def open_bundle_file(root: Path, rel: str) -> BinaryIO:
    """Open a bundle file for reading after :func:`bundle_path`'s checks; the open itself does not follow a
    link either, so a link swapped in after the check is refused too."""
    path = bundle_path(root, rel)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError as exc:
        raise BundleError(f"{rel}: cannot be opened ({exc.strerror}).") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise BundleError(f"{rel}: must be a regular file.")
    return f


def read_bundle_file(root: Path, rel: str, *, max_bytes: int) -> bytes:
    """The bytes of one bundle file (:func:`open_bundle_file`), refusing a file larger than ``max_bytes``."""
    with open_bundle_file(root, rel) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise BundleError(f"{rel}: {size} bytes is more than the {max_bytes} a bundle's {rel} may hold.")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BundleError(f"{rel}: more than the {max_bytes} bytes a bundle's {rel} may hold.")
    return data


class _StrictJsonError(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _StrictJsonError(f"{name} is not JSON (bundle files are strict JSON: write an unbounded value as null)")


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _StrictJsonError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _too_deep(value: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        if isinstance(node, list) and set(map(type, node)) <= _JSON_SCALARS:
            continue  # a list of numbers or strings (golden.json's arrays): one pass in C, nothing deeper
        stack.extend((child, depth + 1) for child in children)
    return False


_JSON_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def parse_json(data: bytes, prefix: str) -> Any:
    """Decode strict, bounded bundle JSON; errors are :class:`BundleError` starting with ``prefix``
    (``"manifest.json:"``, or ``"weights.safetensors: header is"``)."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant, object_pairs_hook=_no_repeated_keys)
    except UnicodeDecodeError as exc:
        raise BundleError(f"{prefix} not UTF-8 ({exc.reason} at byte {exc.start}).") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{prefix} not valid JSON ({exc}).") from None
    except _StrictJsonError as exc:
        raise BundleError(f"{prefix} not valid JSON ({exc}).") from None
    except RecursionError:
        raise BundleError(f"{prefix} not valid JSON (nesting deeper than {MAX_JSON_DEPTH} levels).") from None
    if _too_deep(value, MAX_JSON_DEPTH):
        raise BundleError(f"{prefix} not valid JSON (nesting deeper than {MAX_JSON_DEPTH} levels).")
    return value


# A manifest lists every file with its sha256: about 100 bytes per file and per item of metadata, so a
# catalog of a million titled items is near 100 MiB. Larger is refused before it is parsed.
MAX_MANIFEST_BYTES = 128 << 20


def read_manifest_bytes(root: Path) -> bytes:
    """The exact bytes of ``root/manifest.json`` (a regular file, not a link, at most 128 MiB)."""
    if not os.path.lexists(Path(root) / MANIFEST_NAME):
        raise BundleError(f"{MANIFEST_NAME}: missing from {root}: is it a bundle written by `privrec export`?")
    return read_bundle_file(Path(root), MANIFEST_NAME, max_bytes=MAX_MANIFEST_BYTES)
