"""Test helper shared by the bundle-reading tests: change a bundle on disk as an attacker would."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from privrec.export.manifest import MANIFEST_NAME, file_digest


def edit_manifest(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``edit`` to the decoded ``manifest.json`` and write it back (no re-signing)."""
    path = bundle / MANIFEST_NAME
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def rehash(bundle: Path, *rels: str) -> None:
    """Make the manifest's `files` agree with the files ``rels`` as they are now (a consistent forgery)."""

    def edit(data: dict[str, Any]) -> None:
        for rel in rels:
            sha, size = file_digest(bundle / rel)
            data["files"][rel] = {"sha256": sha, "size": size}

    edit_manifest(bundle, edit)


def rehash_all(bundle: Path) -> None:
    """:func:`rehash` every file the manifest lists."""
    rehash(bundle, *json.loads((bundle / MANIFEST_NAME).read_text())["files"])
