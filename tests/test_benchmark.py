"""Smoke tests of benchmarks/run.py: its cheapest section runs end to end at tiny sizes (not timed)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench():
    """benchmarks/run.py imported as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("mcalc_benchmark_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_flop_count_of_a_small_model_follows_the_formula(bench):
    """2·out_h·out_w·k_h·k_w·C_in·C_out per Conv2D (valid and strided), 2·C_in·C_out per Dense; nested models unrolled."""
    keras = pytest.importorskip("keras")

    inner_in = keras.Input((9, 9, 2))
    inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3, strides=2, padding="same")(inner_in))  # 5x5 out
    x_in = keras.Input((11, 11, 1))
    x = keras.layers.Conv2D(2, (3, 3))(x_in)  # 9x9 out
    x = inner(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3)(x)
    model = keras.Model(x_in, out)
    expected = 2 * 9 * 9 * 3 * 3 * 1 * 2 + 2 * 5 * 5 * 3 * 3 * 2 * 4 + 2 * 4 * 3
    assert bench.count_flops(model) == expected


def test_measured_subprocess_reports_exit_status_and_memory(bench, tmp_path):
    """The launcher passes the exit status through and reports the command's own peak RSS, not ours."""
    grow = "import sys; b = bytearray(150 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); sys.exit(3)"
    cost = bench.run_measured([sys.executable, "-c", grow], tmp_path / "log.txt")
    assert cost.returncode == 3
    assert 150e6 < cost.peak_rss_bytes < 150e6 + 200e6
    assert cost.peak_tree_rss_bytes >= cost.peak_rss_bytes
    assert cost.wall_s > 0


@pytest.mark.slow
def test_data_section_runs_at_tiny_scale_and_writes_its_table(bench, tmp_path):
    """`--quick --only data` generates (and curates, when curation exists) a tiny phantom and reports on it."""
    markdown = tmp_path / "RESULTS.md"
    code = bench.main(["--quick", "--only", "data", "--scale", "0.01", "--work-dir", str(tmp_path / "work"),
                       "--results-dir", str(tmp_path / "raw"), "--markdown", str(markdown), "--write"])
    assert code == 0
    raw = json.loads((tmp_path / "raw" / "latest.json").read_text())
    phantom = json.loads((tmp_path / "work" / "data" / "phantom-0.01" / "phantom.json").read_text())
    assert raw["data"]["n_rois"] == phantom["summary"]["n_rois"] > 0
    assert raw["data"]["phantom"]["returncode"] == 0 and raw["data"]["phantom"]["peak_rss_bytes"] > 0
    text = markdown.read_text()
    assert "`mcalc phantom`" in text and f"{raw['data']['n_rois']} ROIs" in text
    assert "| peak RSS ≤ 4 GB |" in text and "not measured (run with `--book`)" in text
    assert raw["machine"]["cores"] >= 1 and raw["machine"]["tensorflow"]
