"""The benchmark scripts still run against the current library (their figures are not checked here:
benchmarks are measured, never timed in tests)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_llm_throughput_reports_consistent_figures(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "llm_throughput.py"), "--sizes", "3x2,2x3", "--steps", "5",
           "--batch", "16", "--d-model", "8", "--heads", "1", "--layers", "1", "--eval-samples", "64",
           "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["vocab"], r["length"], r["responses"]) for r in rows] == [(3, 2, 9), (2, 3, 8)]
    for r in rows:
        step_s = r["ms_per_step"] / 1e3
        assert 0 < step_s <= r["timed_s"]["2"] / r["steps"] * (1 + 1e-12)  # at most the whole run per step
        assert r["response_tokens_per_s"] == pytest.approx(2 * 16 * r["length"] / step_s)
        assert r["recording_s"] >= 0 or math.isnan(r["recording_s"])  # NaN: lost in timing noise (warned)
        widths = r["ci_widths_final"]
        assert set(widths) == {"exploitability", "duality_gap", "kl_to_class_nash", "regularized_gap"}
        assert all(w > 0 for w in widths.values())  # sampled metrics: intervals, not points
        assert all(0 <= g <= 1 for g in r["duality_gap_first_last"])
    assert "| 9 | 3, 2 |" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("sizes, steps", [("10", "5"), ("1x3", "5"), ("3x2", "7")])
def test_llm_throughput_refuses_bad_arguments(tmp_path, sizes, steps):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "llm_throughput.py"), "--sizes", sizes, "--steps", steps,
           "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "error:" in done.stderr
