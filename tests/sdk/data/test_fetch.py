import zipfile
from pathlib import Path

import pytest

from privrec.sdk.data.fetch import ML100K_FILES, fetch_movielens100k, movielens100k_dir, sha256_file
from privrec.sdk.errors import DataIntegrityError


def test_missing_files_name_the_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run `privrec data fetch`"):
        movielens100k_dir(tmp_path)


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ML100K_FILES:
        (folder / name).write_text("not the data\n")
    with pytest.raises(DataIntegrityError, match=r"ml-100k\.inter: sha256 mismatch \(expected 4edb74e2"):
        movielens100k_dir(tmp_path)


def test_wrong_wheel_is_refused_and_cache_untouched(tmp_path: Path) -> None:
    fake = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("recbole/dataset_example/ml-100k/ml-100k.inter", "user_id:token\n")
    cache = tmp_path / "cache"
    with pytest.raises(DataIntegrityError, match="refusing to extract"):
        fetch_movielens100k(cache, wheel=fake)
    assert not (cache / "ml-100k").exists()


@pytest.mark.data
def test_cached_data_matches_design_hashes() -> None:
    try:
        folder = movielens100k_dir()
    except FileNotFoundError:
        pytest.skip("MovieLens-100K is not cached; run `make data`.")
    for name, digest in ML100K_FILES.items():
        assert sha256_file(folder / name) == digest
