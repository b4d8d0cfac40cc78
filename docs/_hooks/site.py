"""mkdocs hooks for the privrec site (``hooks:`` in mkdocs.yml).

* The committed benchmark reports (``reports/bench/<suite>/report.md`` and the privacy report) become the
  pages ``benchmarks/<suite>.md``, their plots copied beside them: the site shows exactly what
  ``privrec bench`` wrote, never a hand-made copy.
* The threat model page joins the navigation only when ``docs/threat-model.md`` exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPORTS = {
    "latency": "reports/bench/latency/report.md",
    "size": "reports/bench/size/report.md",
    "quality": "reports/bench/quality/report.md",
    "privacy": "reports/bench/privacy/privacy_utility.md",
    "aggregation": "reports/bench/aggregation/report.md",
}
THREAT_MODEL = "threat-model.md"


def _root(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_config(config: Any) -> Any:
    """Add the threat model page after the Production guide when the file exists."""
    if (Path(config.docs_dir) / THREAT_MODEL).is_file():
        for section in config.nav:
            if isinstance(section, dict) and "Guides" in section:
                section["Guides"].insert(1, {"Threat model": THREAT_MODEL})
                break
        else:
            config.nav.append({"Threat model": THREAT_MODEL})
    return config


def on_files(files: Files, config: Any) -> Files:
    """Publish the committed benchmark reports and their plots under ``benchmarks/``."""
    root = _root(config)
    for suite, rel in REPORTS.items():
        report = root / rel
        if not report.is_file():
            raise FileNotFoundError(f"{rel} is missing: the Benchmarks pages publish the committed reports.")
        files.append(File.generated(config, f"benchmarks/{suite}.md", content=report.read_text(encoding="utf-8")))
        for plot in sorted(report.parent.glob("*.png")):
            files.append(File.generated(config, f"benchmarks/{plot.name}", abs_src_path=str(plot)))
    return files
