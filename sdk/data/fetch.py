"""Fetch MovieLens-100K from the PyPI wheel that ships it.

The data set's terms forbid redistribution, so privrec never commits it: ``privrec data fetch`` runs
``pip download --no-deps recbole==1.2.1``, checks the wheel's sha256, extracts ``ml-100k.inter`` and
``ml-100k.item``, checks their sha256 too, and keeps them in a cache directory outside git
(``$PRIVREC_DATA_DIR``, default ``~/.cache/privrec``). Nothing is written to the cache unless every
hash matches, so a partial or tampered download never poisons it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from privrec.sdk.errors import DataIntegrityError

__all__ = [
    "ML100K_FILES",
    "RECBOLE_WHEEL",
    "RECBOLE_WHEEL_SHA256",
    "data_dir",
    "fetch_movielens100k",
    "movielens100k_dir",
    "sha256_file",
]

RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
_MEMBER_DIR = "recbole/dataset_example/ml-100k/"
ML100K_FILES: dict[str, str] = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_dir(cache_dir: Path | None = None) -> Path:
    """The cache root: ``cache_dir``, else ``$PRIVREC_DATA_DIR``, else ``~/.cache/privrec``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("PRIVREC_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "privrec"


def movielens100k_dir(cache_dir: Path | None = None, *, verify: bool = True) -> Path:
    """The folder holding the verified ML-100K files.

    Raises ``FileNotFoundError`` (with the command to run) when a file is missing and
    :class:`DataIntegrityError` when a file's sha256 differs from the pinned one.
    """
    folder = data_dir(cache_dir) / "ml-100k"
    for name, digest in ML100K_FILES.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run `privrec data fetch` (or `make data`) first.")
        if verify:
            found = sha256_file(path)
            if found != digest:
                raise DataIntegrityError(
                    f"{path}: sha256 mismatch (expected {digest}, found {found}). The file is corrupt or was "
                    f"modified: delete it and run `privrec data fetch` again."
                )
    return folder


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), "recbole==1.2.1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheel = dest / RECBOLE_WHEEL
    if proc.returncode != 0 or not wheel.is_file():
        raise OSError(
            f"downloading recbole==1.2.1 (which ships MovieLens-100K) failed with exit code {proc.returncode}: "
            f"{proc.stderr.strip()[-500:]}"
        )
    return wheel


def fetch_movielens100k(cache_dir: Path | None = None, *, wheel: Path | None = None) -> Path:
    """Make the verified ML-100K files available and return their folder.

    Does nothing when the cache already holds both files with the right hashes. ``wheel`` lets a
    caller supply an already downloaded ``recbole-1.2.1`` wheel (it is hash-checked like a download).
    """
    try:
        return movielens100k_dir(cache_dir)
    except (FileNotFoundError, DataIntegrityError):
        pass
    folder = data_dir(cache_dir) / "ml-100k"
    with tempfile.TemporaryDirectory(prefix="privrec-fetch-") as tmp:
        tmp_path = Path(tmp)
        whl = wheel if wheel is not None else _download_wheel(tmp_path)
        found = sha256_file(whl)
        if found != RECBOLE_WHEEL_SHA256:
            raise DataIntegrityError(
                f"{whl.name}: sha256 mismatch (expected {RECBOLE_WHEEL_SHA256}, found {found}); refusing to extract."
            )
        staged = tmp_path / "staged"
        staged.mkdir()
        with zipfile.ZipFile(whl) as zf:
            for name, digest in ML100K_FILES.items():
                target = staged / name
                target.write_bytes(zf.read(_MEMBER_DIR + name))
                got = sha256_file(target)
                if got != digest:
                    raise DataIntegrityError(f"{name} inside {whl.name}: sha256 mismatch (expected {digest}, found {got}).")
        folder.mkdir(parents=True, exist_ok=True)
        for name in ML100K_FILES:
            os.replace(staged / name, folder / name)
    return movielens100k_dir(cache_dir)
