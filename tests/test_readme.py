"""The README's Python examples run, in order, exactly as printed (in a temporary directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(_python_blocks()) >= 2


@pytest.mark.data
@pytest.mark.xdist_group("ml100k")
def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from privrec.sdk.data import movielens100k_dir

    try:
        movielens100k_dir()
    except FileNotFoundError:
        pytest.skip("MovieLens-100K is not cached; run `make data`.")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in _python_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "Star Wars" not in out.split("\n")[-2]  # the last print lists recommendations, never the excluded history
    assert (tmp_path / "bundles" / "ml100k-int8" / "manifest.json").is_file()


def test_readme_privacy_example_matches_the_command() -> None:
    """The ε values the README shows for `privrec privacy` are what the command computes (never typed)."""
    from privrec.sdk.privacy.report import privacy_report

    shown = re.search(r'# \{"epsilon": ([0-9.]+), "epsilon_rdp": ([0-9.]+), "epsilon_pld": ([0-9.]+)', README.read_text())
    assert shown is not None, "the README's privacy example output is missing"
    got = privacy_report(noise_multiplier=1.0, sample_rate=0.01, rounds=1000, delta=1e-5)
    eps, rdp, pld = (float(x) for x in shown.groups())
    assert round(got["epsilon"], 4) == eps and round(got["epsilon_rdp"], 4) == rdp
    assert round(got["epsilon_pld"], 4) == pld
