"""The regression guard of benchmarks/grid_throughput.py (``--against``): the comparison of each
width's grid/matmul ratio with the stored baseline, on fixed numbers (no timing here), and the
stored baseline's shape."""

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("grid_throughput", REPO / "benchmarks" / "grid_throughput.py")
gt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gt)


def test_drop_over_15_percent_is_marked_and_smaller_changes_are_not():
    base = {"64": 1.0, "128": 0.5, "256": 0.2, "512": 0.1}
    now = {"64": 0.84, "128": 0.43, "256": 0.25, "512": 0.1, "1024": 0.05}
    lines = dict(zip(["header", *now], gt.compare(now, base)))
    assert "DROP" in lines["64"] and "-16.0%" in lines["64"]  # 16 % down
    assert "DROP" not in lines["128"] and "-14.0%" in lines["128"]  # 14 % down: within the band
    assert "DROP" not in lines["256"] and "+25.0%" in lines["256"]  # faster
    assert "DROP" not in lines["512"] and "+0.0%" in lines["512"]
    assert "no baseline" in lines["1024"]


def test_ratios_are_grid_rate_per_matmul_gflops():
    res = {"matmul_gflops": 200.0, "widths": {"64": {"grid": 300.0}, "256": {"grid": 40.0}}}
    assert gt._ratios(res) == {"64": 1.5, "256": 0.2}


def test_stored_baseline_has_every_width_of_the_table():
    base = json.loads((REPO / "benchmarks" / "baselines" / "grid.json").read_text())
    assert set(base["ratio"]) >= {"64", "128", "256"}
    assert all(v > 0 for v in base["ratio"].values())
