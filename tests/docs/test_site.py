"""The documentation site says what the code and the committed measurements say.

Figures quoted in the pages are compared with the data they were taken from; the command-line page and the
API reference are checked to cover every command, option and public module; the tutorial notebook runs the
same steps, in the same order, as ``privrec tutorial``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _table_after(page: str, marker: str) -> list[list[str]]:
    """The rows (cells stripped) of the first Markdown table after ``<!-- marker…`` in ``docs/page``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    start = text.index(f"<!-- {marker}")
    lines = text[start:].splitlines()[1:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            if rows:
                break
            continue
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[2:]  # without the header and the rule


# ------------------------------------------------------------------------------------------------ figures
def test_founding_privacy_table_is_the_measured_one() -> None:
    data = json.loads((DOCS / "data" / "founding_privacy" / "privacy_utility.json").read_text())
    rows = {r["epsilon"]: r for r in data["rows"]}
    assert set(rows) == {0.1, 1.0, 5.0, 10.0, None}
    table = _table_after("founding-document.md", "founding-privacy-table")
    founding = {"0.1": "65%", "1": "82%", "5": "89%", "10": "92%", "∞ (no DP)": "—"}
    assert [r[0] for r in table] == list(founding)
    for cells in table:
        eps = None if cells[0].startswith("∞") else float(cells[0])
        row = rows[eps]
        assert cells[1] == founding[cells[0]]
        assert float(cells[2]) == pytest.approx(row["noise_multiplier"], abs=0.006)
        assert cells[3] == f"{row['full_hr_all']:.4f}"
        ratio = f"{row['ratio_all_to_federated_off']:.2f}"
        if eps is not None:
            low, high = row["ratio_all_to_federated_off_ci"]
            ratio += f" [{low:.2f}, {high:.2f}]"
        assert cells[4] == ratio
        assert cells[5] == f"{row['ratio_all_to_central']:.2f}"


def test_founding_privacy_run_agrees_with_the_committed_report_where_they_overlap() -> None:
    """ε = 1 and DP off are in both runs: the same pipeline and seeds must give the same numbers."""
    def rows(path: Path) -> dict[float | None, dict[str, float]]:
        return {r["epsilon"]: r for r in json.loads(path.read_text())["rows"]}

    founding = rows(DOCS / "data" / "founding_privacy" / "privacy_utility.json")
    committed = rows(ROOT / "reports" / "bench" / "privacy" / "privacy_utility.json")
    for eps in (1.0, None):
        assert founding[eps]["full_hr_all"] == pytest.approx(committed[eps]["full_hr_all"], abs=1e-9)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def test_bundle_size_and_reconstruction_tables_are_the_measured_ones() -> None:
    rows = json.loads((DOCS / "data" / "bundle_sizes.json").read_text())["rows"]
    by = {(r["dim"], r["precision"], r["platform"]): r for r in rows}
    sizes = _table_after("optimization.md", "bundle-sizes-table")
    assert [(c[0], c[1]) for c in sizes] == [("32", "float32"), ("32", "int8"), ("64", "float32"), ("64", "int8")]
    for cells in sizes:
        d, p = int(cells[0]), cells[1]
        android, ios, onnx = by[(d, p, "android (tflite)")], by[(d, p, "ios (coreml)")], by[(d, p, "onnx")]
        assert cells[2:5] == [f"{_mb(android['bytes'])} MB", f"{_mb(ios['bytes'])} MB", f"{_mb(onnx['bytes'])} MB"]
        assert cells[5] == f"{_mb(android['gzip_bytes'])} / {_mb(ios['gzip_bytes'])} MB"
    timing = _table_after("optimization.md", "reconstruct-table")
    for cells in timing:
        d, p = int(cells[0]), cells[1]
        assert cells[2] == f"{by[(d, p, 'android (tflite)')]['reconstruct_ms'] / 1000:.1f} s"
        assert cells[3] == f"{by[(d, p, 'onnx')]['reconstruct_ms'] / 1000:.1f} s"


def test_home_page_bundle_sizes_match_the_measurement() -> None:
    rows = json.loads((DOCS / "data" / "bundle_sizes.json").read_text())["rows"]
    by = {(r["dim"], r["precision"], r["platform"]): r["bytes"] for r in rows}
    text = (DOCS / "index.md").read_text()
    assert f"an Android bundle (TFLite) is about {round(by[(32, 'int8', 'android (tflite)')] / 1e6)} MB" in text
    assert f"an iOS bundle (Core ML) about {round(by[(32, 'int8', 'ios (coreml)')] / 1e6)} MB" in text


def test_epsilon_reading_table_is_computed_right() -> None:
    table = _table_after("concepts.md", "epsilon-table")
    assert [c[0] for c in table] == ["0.1", "0.5", "1", "2", "5", "8", "10"]

    def pct(text: str) -> float:
        return float(text.rstrip("%")) / 100

    for cells in table:
        eps = float(cells[0])
        e = math.exp(eps)
        assert float(cells[1].replace(",", "")) == pytest.approx(e, rel=5e-3)
        assert pct(cells[2]) == pytest.approx(e / (1 + e), abs=6e-4)
        assert pct(cells[3]) == pytest.approx(0.01 * e / (0.01 * e + 0.99), abs=6e-4)
        assert pct(cells[4]) == pytest.approx(min(1.0, 0.01 * e), abs=6e-4)


def test_size_formulas_quoted_in_the_pages() -> None:
    """(d + 8) and (4d + 4) bytes per item: what weights.safetensors holds (its header aside)."""
    rows = json.loads((DOCS / "data" / "bundle_sizes.json").read_text())["rows"]
    for r in rows:
        per_item = r["dim"] + 8 if r["precision"] == "int8" else 4 * r["dim"] + 4
        assert 0 <= r["weights_bytes"] - 100_000 * per_item < 1000


# ------------------------------------------------------------------------------------------------ coverage
def _commands() -> dict[str, list[str]]:
    import click
    import typer

    from privrec.cli import app

    group = typer.main.get_command(app)
    ctx = click.Context(group)
    out: dict[str, list[str]] = {}
    for name in group.list_commands(ctx):  # type: ignore[attr-defined]
        cmd = group.get_command(ctx, name)  # type: ignore[attr-defined]
        if hasattr(cmd, "list_commands"):
            subs = [(f"{name} {n}", cmd.get_command(ctx, n)) for n in cmd.list_commands(ctx)]
        else:
            subs = [(name, cmd)]
        for full, sub in subs:
            out[full] = [o for p in sub.params if p.param_type_name == "option" for o in p.opts if o.startswith("--")
                         and o != "--help"]
    return out


def test_command_line_page_covers_every_command_and_option() -> None:
    text = (DOCS / "cli.md").read_text()
    sections = re.split(r"^### `privrec ([a-z ]+)`$", text, flags=re.M)
    documented = dict(zip(sections[1::2], sections[2::2], strict=True))
    commands = _commands()
    assert set(documented) == set(commands), (
        f"undocumented: {set(commands) - set(documented)}; gone: {set(documented) - set(commands)}")
    for name, options in commands.items():
        missing = [o for o in options if f"`{o}`" not in documented[name]]
        assert not missing, f"privrec {name}: options {missing} are not on the Command line page"


_PACKAGES = {"privrec.sdk": ROOT / "sdk", "privrec.export": ROOT / "export", "privrec.runtime": ROOT / "runtime",
             "privrec.server_stub": ROOT / "server_stub"}


def _public_modules() -> set[str]:
    names = {"privrec.compat", "privrec.tutorial"}
    for package, folder in _PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if any(p.startswith("_") for p in parts) or "__pycache__" in rel.parts:
                continue
            names.add(".".join([package, *parts]))
    return names


def test_api_reference_covers_every_public_module() -> None:
    referenced = set()
    for page in (DOCS / "api").glob("*.md"):
        referenced |= set(re.findall(r"^::: ([\w.]+)$", page.read_text(), flags=re.M))
    missing = sorted(_public_modules() - referenced)
    assert not missing, f"modules missing from docs/api/: {missing}"
    gone = sorted(referenced - _public_modules())
    assert not gone, f"docs/api/ references modules that do not exist: {gone}"


def test_every_page_is_in_the_navigation() -> None:
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    _Loader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)  # a SafeLoader that ignores mkdocs' tags

    def files(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, dict):
            return [f for v in nav.values() for f in files(v)]
        if isinstance(nav, list):
            return [f for v in nav for f in files(v)]
        return []

    in_nav = set(files(config["nav"]))
    hooked = {"threat-model.md"}  # added by docs/_hooks/site.py when the file exists
    generated = {f"benchmarks/{s}.md" for s in ("latency", "size", "quality", "privacy", "aggregation")}
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")} | {"tutorial.py"}
    pages = {p for p in pages if not p.startswith(("data/", "_hooks/", "scripts/"))}
    assert pages - hooked <= in_nav, f"pages outside the navigation: {sorted(pages - hooked - in_nav)}"
    assert in_nav - pages - generated == set(), f"navigation entries without a page: {sorted(in_nav - pages - generated)}"


def test_no_page_cites_internal_documents() -> None:
    """Pages say what is meant or link a page; they never cite internal design documents or issue numbers."""
    sources = [*DOCS.rglob("*.md"), DOCS / "tutorial.py", ROOT / "privrec" / "compat.py", ROOT / "privrec" / "tutorial.py"]
    pattern = re.compile(r"DESIGN\s*§|DESIGN\.md|ORIGIN\.md|\bissue\s*#\d+", re.I)
    offenders = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in sources for m in pattern.finditer(p.read_text())]
    assert not offenders, offenders


# ------------------------------------------------------------------------------------------------ tutorial
def test_the_notebook_runs_the_cli_steps_in_order() -> None:
    from privrec.tutorial import STEPS

    source = (DOCS / "tutorial.py").read_text()
    assert re.findall(r'run_step\(ctx, "(\w+)"\)', source) == list(STEPS)
    assert "quick=True" in source
