"""The privacy benchmark's settings and report writers (the full benchmark runs under `privrec bench`)."""

from __future__ import annotations

import math
from pathlib import Path

from privrec.benchmarks.privacy import EPSILONS, _plot, _write_markdown, bench_config


def test_settings_per_epsilon() -> None:
    for eps in EPSILONS:
        cfg = bench_config(eps)
        assert cfg.delta == 1e-4
        if math.isinf(eps):
            assert cfg.dp_mode == "off" and cfg.target_epsilon is None
        else:
            assert cfg.dp_mode != "off" and cfg.target_epsilon == eps
        assert bench_config(eps, quick=True).rounds < cfg.rounds


def test_epsilon_8_adds_a_free_table_to_the_genre_tie() -> None:
    cfg, tied = bench_config(8.0), bench_config(4.0)
    assert (cfg.item_features, cfg.free_embedding, cfg.dim, cfg.rounds) == ("genre", True, 16, 300)
    assert (tied.item_features, tied.free_embedding, tied.dim, tied.rounds) == ("genre", False, 4, 150)


def test_report_files(tmp_path: Path) -> None:
    rows = []
    for i, eps in enumerate(EPSILONS):
        rows.append({
            "epsilon": None if math.isinf(eps) else eps, "noise_multiplier": 0.0 if math.isinf(eps) else 2.0 / (i + 1),
            "sample_rate": 0.2, "rounds": 150, "clip_norm": 1.0,
            "epsilon_rdp": None if math.isinf(eps) else eps, "epsilon_pld": None if math.isinf(eps) else eps * 0.9,
            "full_hr": 0.05 + 0.02 * i, "full_hr_std": 0.01, "sampled_hr": 0.3 + 0.05 * i, "sampled_hr_std": 0.02,
            "ratio_full_to_federated_off": (0.05 + 0.02 * i) / 0.15, "ratio_full_to_central": (0.05 + 0.02 * i) / 0.2,
            "seeds": 3,
        })
    result = {"quick": False, "delta": 1e-4, "seeds": [0, 1, 2], "heldout_users": 94, "rows": rows,
              "central": {"full_hr": 0.2, "full_hr_std": 0.01, "sampled_hr": 0.6, "sampled_hr_std": 0.01},
              "federated_off": {"full_hr": 0.15, "sampled_hr": 0.55}, "seconds": 12.0}
    rows[4] |= {"ratio_full_to_federated_off_ci": [0.7, 1.02], "ratio_full_to_central_ci": [0.5, 0.8]}  # ε = 8
    result["ci_level"] = 0.95
    _write_markdown(tmp_path / "t.md", result, EPSILONS)
    assert "full HR@10 (all users)" not in (tmp_path / "t.md").read_text()  # only when every row has it
    for i, row in enumerate(rows):
        row |= {"full_hr_all": 0.1 + 0.02 * i, "ratio_all_to_federated_off": (0.1 + 0.02 * i) / 0.2,
                "ratio_all_to_central": (0.1 + 0.02 * i) / 0.25, "ratio_all_to_federated_off_ci": [0.4, 1.1]}
    result |= {"all_users": 943, "central_full_hr_all": 0.25}
    _write_markdown(tmp_path / "t.md", result, EPSILONS)
    text = (tmp_path / "t.md").read_text()
    assert "| 8.000 | 0.1800 | 0.90 [0.40, 1.10] | 0.72 |" in text
    assert "- ε = 8.000: 0.90 × federated DP-off (goal ≥ 0.85): met; CI [0.40, 1.10], the goal is inside it" in text
    assert "| ∞ | 0.000 | 0.2 | 150 | 1.0 | ∞ | ∞ | 0.1500 ± 0.0100 | 0.5500 ± 0.0200 | 1.00 | 0.75 |" in text
    assert "| 0.1300 ± 0.0100 | 0.5000 ± 0.0200 | 0.87 [0.70, 1.02] | 0.65 [0.50, 0.80] |" in text
    assert "95% paired bootstrap CI over the evaluated users (94 held-out, or all;" in text
    assert "ε = 8.000: 0.87 × federated DP-off (goal ≥ 0.85): met; CI [0.70, 1.02], the goal is inside it" in text
    assert "| 1.000 | 1.000 | 0.2 | 150 | 1.0 | 1.000 | 0.900 | 0.0700 ± 0.0100 |" in text
    assert "ε = 8.000: free table + genre tie (V = E + F W, d = 16), fedavg η_s = 0.3;" in text
    assert "ε = 4.000: genre tie (V = F W, d = 4), fedavg η_s = 0.3;" in text
    _plot(tmp_path / "t.png", result, EPSILONS)
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
