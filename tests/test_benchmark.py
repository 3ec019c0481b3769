"""Smoke tests of the benchmark (benchmarks/): its cheapest section runs end to end at tiny sizes
(not timed), the report numbers its sections in order, and --merge keeps the other sections."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import (
    backbone,
    book,
    data,
    extraction,
    markdown,
    measure,
    report,
    run,
    threads,
    training,
)

REPO = Path(__file__).resolve().parents[1]


def test_flop_count_of_a_small_model_follows_the_formula():
    """2·out_h·out_w·k_h·k_w·C_in·C_out per Conv2D (valid and strided), 2·C_in·C_out per Dense; nested models unrolled."""
    import keras

    inner_in = keras.Input((9, 9, 2))
    inner = keras.Model(
        inner_in, keras.layers.Conv2D(4, 3, strides=2, padding="same")(inner_in)
    )  # 5x5 out
    x_in = keras.Input((11, 11, 1))
    x = keras.layers.Conv2D(2, (3, 3))(x_in)  # 9x9 out
    x = inner(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3)(x)
    model = keras.Model(x_in, out)
    expected = 2 * 9 * 9 * 3 * 3 * 1 * 2 + 2 * 5 * 5 * 3 * 3 * 2 * 4 + 2 * 4 * 3
    assert backbone.count_flops(model) == expected


def test_measured_subprocess_reports_exit_status_and_memory(tmp_path):
    """The launcher passes the exit status through and reports the command's own peak RSS, not ours."""
    grow = "import sys; b = bytearray(150 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); sys.exit(3)"
    cost = measure.run_measured([sys.executable, "-c", grow], tmp_path / "log.txt")
    assert cost.returncode == 3
    assert 150e6 < cost.peak_rss_bytes < 150e6 + 200e6
    assert cost.peak_tree_rss_bytes >= cost.peak_rss_bytes
    assert cost.wall_s > 0


@pytest.mark.slow
def test_data_section_runs_at_tiny_scale_and_writes_its_table(tmp_path):
    """`--quick --only data` generates and curates a tiny phantom and reports on both."""
    markdown = tmp_path / "RESULTS.md"
    code = run.main(
        [
            "--quick",
            "--only",
            "data",
            "--scale",
            "0.01",
            "--work-dir",
            str(tmp_path / "work"),
            "--results-dir",
            str(tmp_path / "raw"),
            "--markdown",
            str(markdown),
            "--write",
        ]
    )
    assert code == 0
    raw = json.loads((tmp_path / "raw" / "latest.json").read_text())
    phantom = json.loads((tmp_path / "work" / "data" / "phantom-0.01" / "phantom.json").read_text())
    assert raw["data"]["n_rois"] == phantom["summary"]["n_rois"] > 0
    assert (
        raw["data"]["phantom"]["returncode"] == 0 and raw["data"]["phantom"]["peak_rss_bytes"] > 0
    )
    assert raw["data"]["curate"]["returncode"] == 0 and Path(raw["data"]["manifest"]).is_file()
    text = markdown.read_text()
    assert "`mcalc phantom`" in text and f"{raw['data']['n_rois']} ROIs" in text
    assert "`mcalc curate`" in text and "\n## 2. Data: phantom generation and curation" in text
    assert "| peak RSS ≤ 4 GB |" in text and "not measured (run with `--book`)" in text
    assert raw["machine"]["cores"] >= 1 and raw["machine"]["tensorflow"]


def test_merge_keeps_other_sections_and_replaces_book_rows_by_scale():
    """--merge: a re-run section replaces the last run's, other sections and other book scales stay."""
    prior = {
        "argv": " --book --write",
        "date": "d0",
        "benchmark_wall_s": 100.0,
        "other_cpu_s": 1.0,
        "backbone": {"images_per_s": 10.0},
        "book": {
            "rows": [
                {"scale": 0.1, "wall_s": 1.0, "returncode": 1},
                {"scale": 1.0, "wall_s": 500.0, "returncode": 0},
            ]
        },
    }
    new = {
        "argv": " --only book --book-scales 0.1",
        "date": "d1",
        "benchmark_wall_s": 60.0,
        "other_cpu_s": 2.0,
        "book": {"rows": [{"scale": 0.1, "wall_s": 55.0, "returncode": 0}]},
    }
    merged = run.merge_results(prior, new, ["book"])
    assert merged["backbone"] == {"images_per_s": 10.0}
    assert [(r["scale"], r["wall_s"], r["returncode"]) for r in merged["book"]["rows"]] == [
        (0.1, 55.0, 0),
        (1.0, 500.0, 0),
    ]
    assert merged["benchmark_wall_s"] == 160.0 and merged["other_cpu_s"] == 3.0
    assert (
        "--merge" in merged["argv"]
        and "--book-scales 0.1" in merged["argv"]
        and "--book --write" in merged["argv"]
    )
    assert merged["date"] == "d1"
    twice = run.merge_results(merged, new, ["book"])
    assert markdown.commands(twice["argv"]) == (
        "`python benchmarks/run.py --book --write`, then (`--merge`) "
        "`python benchmarks/run.py --only book --book-scales 0.1` (2 runs)"
    )
    only_backbone = run.merge_results(
        prior, {"argv": "", "backbone": {"images_per_s": 12.0}}, ["backbone"]
    )
    assert (
        only_backbone["backbone"] == {"images_per_s": 12.0}
        and only_backbone["book"] == prior["book"]
    )


def test_sections_numbered_in_order_in_code_and_results():
    """Sections 1-5 are the modules in run order, and RESULTS.md publishes them numbered 1, 2, 3, 4, 5."""
    modules = report.SECTION_MODULES
    assert [m.NUMBER for m in modules] == [1, 2, 3, 4, 5]
    assert tuple(m.__name__.rsplit(".", 1)[1] for m in modules) == run.SECTIONS
    published = re.findall(r"^\*\*(\d)\. ", (REPO / "benchmarks" / "RESULTS.md").read_text(), re.M)
    assert published == sorted(published) and len(published) == len(set(published))


def test_run_py_runs_as_a_script():
    """`python benchmarks/run.py` (the README's and make benchmark's command) finds its package."""
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "--merge" in done.stdout and "--only" in done.stdout


def _mcalc_names(tree: ast.AST) -> list[tuple[str, str]]:
    """(module, name) of every mcalc name a benchmark source imports or reads off an imported module."""
    names, modules = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mcalc":
            for alias in node.names:
                names.append((node.module, alias.name))
                if hasattr(
                    importlib.import_module(node.module), "__path__"
                ) and importlib.util.find_spec(f"{node.module}.{alias.name}"):
                    modules[alias.asname or alias.name] = importlib.import_module(
                        f"{node.module}.{alias.name}"
                    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in modules:
                names.append((modules[node.value.id].__name__, node.attr))
    return names


def test_every_mcalc_name_the_benchmark_uses_exists():
    """The sections import mcalc lazily: every name they (and the book script) use must exist."""
    trees = [ast.parse(p.read_text()) for p in sorted((REPO / "benchmarks").glob("*.py"))]
    trees.append(ast.parse(book._BOOK_SCRIPT))
    names = [pair for tree in trees for pair in _mcalc_names(tree)]
    assert ("mcalc.data.curation", "curate") in names and (
        "mcalc.learn.model",
        "train_head",
    ) in names
    missing = [f"{m}.{n}" for m, n in names if not hasattr(importlib.import_module(m), n)]
    assert not missing


def test_the_rebuild_section_survives_a_rewrite_of_results_md(tmp_path):
    from benchmarks import rebuild

    md = tmp_path / "RESULTS.md"
    assert rebuild.kept_section(md) == ""
    md.write_text(f"old tables\n\n{rebuild.MARKER}\n\n**Rebuild**\n| a |\n")
    kept = rebuild.kept_section(md)
    assert kept.startswith(f"\n\n{rebuild.MARKER}") and "**Rebuild**" in kept
    assert "old tables" not in kept


def _setting(intra: int, inter: int, backbone_s: list[float], ceiling_s: list[float]) -> dict:
    """Raw figures of one thread-pool setting's process: batch 4, 1 GFLOP an image, 2 GFLOP a ceiling call."""
    return {
        "intra": intra,
        "inter": inter,
        "started": "10:00:00",
        "wall_s": 60.0,
        "ok": True,
        "variant": "folded",
        "batch": 4,
        "flops_per_image": 10**9,
        "ceiling_flops_per_call": 2 * 10**9,
        "rounds": [
            {"ceiling": c, "backbone": b, "ceiling_after": c + 0.5}
            for b, c in zip(backbone_s, ceiling_s)
        ],
    }


def _variants(plain_s: float, bf16_s: float) -> dict:
    """Section 1's raw variant figures: plain and the bfloat16 variant at batch 32, two rounds; the
    ceiling's call is 2 FLOP, 0.01 s in float32 and 0.0025 s in bfloat16 (200 and 800 FLOP/s)."""
    rounds = [
        {
            "ceiling": 0.01,
            "ceiling_bf16": 0.0025,
            "plain@32": plain_s,
            "folded+bf16@32": bf16_s,
            "ceiling_after": 0.02,
            "ceiling_bf16_after": 0.005,
        }
    ] * 2
    return {
        "runs": ["plain@32", "folded+bf16@32"],
        "prepare_s": {"plain": 0.0, "folded+bf16": 1.0},
        "first_call_s": {"plain@32": 1.0, "folded+bf16@32": 2.0},
        "max_abs_diff_rel": {"plain": 0.0, "folded+bf16": 0.006},
        "feature_scale": 1.0,
        "rounds": rounds,
    }


SMALL_CONV = {"conv_hw": 1, "conv_kernel": 1, "conv_channels": 1, "conv_batch": 1, "batch_size": 32}


def test_a_bfloat16_variant_is_measured_against_the_bfloat16_ceiling():
    """Plain's share is of the float32 ceiling, the bfloat16 variant's of the same convolution in
    bfloat16 (same rounds); the table says which; the speed-up is still paired against plain."""
    out = {s["run"]: s for s in backbone.summarize_variants(_variants(3.2, 0.8), 10, SMALL_CONV)}
    # plain: 10 images/s × 10 FLOP = 100 FLOP/s of a 200 FLOP/s ceiling
    assert out["plain@32"]["ceiling"] == "float32"
    assert out["plain@32"]["fraction_of_ceiling"] == pytest.approx(0.5)
    # bf16: 40 images/s × 10 FLOP = 400 FLOP/s of the 800 FLOP/s bfloat16 ceiling, 4× plain
    bf16 = out["folded+bf16@32"]
    assert bf16["ceiling"] == "bfloat16" and bf16["fraction_of_ceiling"] == pytest.approx(0.5)
    assert bf16["speedup_vs_plain"] == pytest.approx(4.0)
    rows = backbone._variant_rows(
        {"variants": _variants(3.2, 0.8), "flops_per_image": 10}, SMALL_CONV
    )
    assert rows[0][2] == "50% (50%–50%)"
    assert rows[1][2] == "50% (50%–50%) of the bfloat16 ceiling (0 GFLOP/s)"
    assert rows[1][4] == "6.0e-03"


def test_the_backbone_target_judges_the_books_variant_on_the_interleaved_rounds():
    """The book's variant's median share of the float32 ceiling over section 1's rounds is judged
    against 85%, its range and the single measurement beside it; without rounds: n/a."""
    var = _variants(3.2, 0.8)
    var["runs"] = ["plain@32", "folded@32"]
    var["rounds"] = [{**r, "folded@32": 1.6} for r in var["rounds"]]  # 20 images/s: 100%
    bb = {"variant": "folded", "flops_per_image": 10, "variants": var, "fraction_of_ceiling": 0.9}
    target = report.backbone_target({"backbone": bb, "config": SMALL_CONV})
    assert target.verdict == "PASS" and target.figure == "100%"
    assert target.measured == (
        "100% (median of 2 rounds; range 100%–100%); 90% in the single measurement of section 1"
    )
    var["rounds"] = [{**r, "folded@32": 3.2} for r in var["rounds"]]  # 10 images/s: 50%
    assert report.backbone_target({"backbone": bb, "config": SMALL_CONV}).verdict == "MISS"
    assert report.backbone_target({}).verdict == "n/a"


def test_the_floor_says_what_the_opt_in_bfloat16_variant_would_take():
    """The floor stays float32's (the book's arithmetic); the bfloat16 variant's time for the same
    passes is a row and a sentence of its own, from section 1's measured speed."""
    row = _book_row(1.0, 900.0, 30.0)
    row["stages"]["backbone_rows"] = 3000
    bb = {
        "flops_per_image": 10,
        "ceiling": {"flops_per_s": 200.0},
        "variants": _variants(3.2, 0.8),
    }
    results = {"book": {"rows": [row]}, "backbone": bb, "config": SMALL_CONV}
    assert book.reduced_precision_s(results, row) == ("folded+bf16", pytest.approx(75.0))
    assert book.reduced_precision_s({"book": results["book"]}, row) is None
    text = "\n".join(book.render(results))
    assert "| the backbone alone at the speed of the opt-in `folded+bf16` variant" in text
    sentence = book.floor_sentence(results, row)
    assert (
        "the same passes would take 75.0 s at the speed section 1 measured, 2.0× faster" in sentence
    )


def test_thread_settings_are_configured_once_with_the_default_first():
    """The settings list lives in config.py, starts with TensorFlow's default; --quick runs a prefix of it."""
    from benchmarks import config

    assert config.THREAD_SETTINGS[0] == (0, 0) and len(set(config.THREAD_SETTINGS)) == 4
    assert config.BenchConfig().thread_settings == config.THREAD_SETTINGS
    quick = config.QUICK["thread_settings"]
    assert quick == config.THREAD_SETTINGS[: len(quick)]


def test_thread_setting_summary_is_the_ideal_over_the_measured_time_per_round():
    """Per round: images/s = batch / time; fraction = FLOPs · rate / (the faster ceiling call's FLOP/s)."""
    from benchmarks import threads

    s = threads.summarize_setting(_setting(0, 0, [2.0, 4.0, 1.0], [1.0, 2.0, 1.0]))
    # ceilings 2, 1, 2 GFLOP/s; rates 2, 1, 4 images/s; fractions 1.0, 1.0, 2.0
    assert s["images_per_s"] == 2.0 and s["fraction_of_ceiling"] == 1.0
    assert s["fraction_range"] == (1.0, 2.0) and s["rounds"] == 3


def test_thread_settings_reading_names_the_fastest_by_fraction_of_the_ceiling():
    """The generated reading compares fractions of the ceiling; images/s are divided by the default's."""
    from benchmarks import threads

    th = {
        "settings": [
            _setting(0, 0, [2.0, 2.0], [1.0, 1.0]),  # 2 images/s, fraction 1.0
            _setting(2, 1, [1.0, 1.0], [0.5, 0.5]),  # 4 images/s, ceiling 4 GFLOP/s: fraction 1.0
            _setting(1, 2, [1.0, 1.0], [1.0, 1.0]),  # 4 images/s, fraction 2.0
            {
                "intra": 2,
                "inter": 2,
                "started": "10:03:00",
                "wall_s": 5.0,
                "ok": False,
                "error": "exit 1: boom",
            },
        ]
    }
    summaries = threads.summarize_threads(th)
    assert [s["setting"] for s in summaries] == [(0, 0), (2, 1), (1, 2)]
    assert [s["ratio_to_default"] for s in summaries] == [1.0, 2.0, 2.0]
    text = threads.reading(summaries)
    assert text.startswith("Fastest by % of the ceiling: intra 1 / inter 2, at 200%")
    assert "against the default's 100%: 2.00× the default's fraction" in text
    lines = threads.render({"backbone": {"threads": th}})
    assert "### Thread-pool settings" in lines
    rows = [line for line in lines if line.startswith("| ")]
    assert rows[1].startswith(
        "| TensorFlow's default (intra 0 / inter 0) | 2.00 | 100% (100%–100%) | 1.00× |"
    )
    assert rows[4].startswith("| intra 2 / inter 2 | — | failed: exit 1: boom |")
    assert lines[-1].startswith("Reading (generated from this run): Fastest")
    alone = threads.reading(threads.summarize_threads({"settings": th["settings"][:2]}))
    assert "no other setting beat the default: the next, intra 2 / inter 1, reached 100%" in alone
    # on 2 cores, intra 1's ceiling ran on one thread: set apart, not named fastest
    two_cores = threads.reading(summaries, cores=2)
    assert two_cores.startswith(
        "Fastest by % of the ceiling: TensorFlow's default (intra 0 / inter 0), at 100% of its "
        "process's ceiling; "
        "no other setting beat the default: the next, intra 2 / inter 1, reached 100%"
    )
    assert two_cores.endswith(
        "Not compared: intra 1 / inter 2 reached 200% of a ceiling measured on 1 intra-op "
        "thread(s), fewer than the machine's 2 cores, so its fraction is not the machine's; in "
        "images/s it ran 2.00× the default."
    )
    rendered = threads.render({"backbone": {"threads": th}, "machine": {"cores": 2}})
    assert rendered[-1] == f"Reading (generated from this run): {two_cores}"
    assert threads.render({}) == []


def test_union_of_spans_counts_overlaps_once():
    """Two notebooks side by side count once; a gap is not counted."""
    assert book.union_s([(0, 10), (5, 12), (20, 25), (21, 22)]) == 17
    assert book.union_s([]) == 0


def _executed(path: Path, start: float, seconds: float) -> None:
    """An executed notebook with papermill's record of its start, end and duration."""
    from datetime import UTC, datetime

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat()

    meta = {"start_time": iso(start), "end_time": iso(start + seconds), "duration": seconds}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": [], "metadata": {"papermill": meta}}))


def test_stage_times_read_the_notebooks_sweeps_phantom_and_clock(tmp_path):
    """Where a book's time went, from its folders: notebooks, sweep points, the phantom's file times, the script's clock."""
    import os

    t0 = 1_700_000_000.0
    work = tmp_path / "scale-1"
    _executed(work / "executed" / "01_data_curation.ipynb", t0 + 10, 50)
    _executed(work / "executed" / "02_preprocessing.ipynb", t0 + 60, 100)
    _executed(work / "executed" / "03_a.ipynb", t0 + 200, 30)  # 03_a and 03_b side by side
    _executed(work / "executed" / "03_b.ipynb", t0 + 200, 40)
    points = work / "results" / "sweeps" / "seeds" / "notebooks"
    _executed(points / "p1.ipynb", t0 + 165, 20)
    _executed(points / "p2.ipynb", t0 + 170, 20)
    records = points.parent / "records"
    records.mkdir()
    for name, before in (
        ("p1", 0),
        ("p2", 1),
    ):  # both points in one warm kernel, one after the other
        kernel = {"warm": True, "points_before": before}
        (records / f"{name}.json").write_text(json.dumps({"kernel": kernel}))
    phantom = work / "data" / "phantom"
    phantom.mkdir(parents=True)
    (phantom / ".mcalc.lock").write_text("pid 1\n")
    (phantom / "phantom.json").write_text(json.dumps({"complete": True}))
    os.utime(phantom / ".mcalc.lock", (t0 + 12, t0 + 12))
    os.utime(phantom / "phantom.json", (t0 + 42, t0 + 42))
    clock = {
        "script_start": t0,
        "imported": t0 + 5,
        "run_profile_end": t0 + 245,
        "build_book_end": t0 + 265,
    }
    (work / book.STAGES).write_text(json.dumps(clock))
    st = book.stage_times(work)
    assert list(st["notebook_s"]) == ["01_data_curation", "02_preprocessing", "03_a", "03_b"]
    assert st["sweeps"] == [
        {
            "name": "seeds",
            "points": 2,
            "kernels": {"warm": 2, "kernels": 1},
            "seconds": 40.0,
            "start": t0 + 165,
            "busy_s": 25.0,
        }
    ]
    assert st["busy_s"] == 50 + 100 + 25 + 40 and st["phantom_s"] == 30.0
    row = {"scale": 1.0, "wall_s": 270.0, "returncode": 0, "stages": st}
    assert book.kept_phantom_s(row) == 240.0
    rows = book.stage_rows(row)
    assert [r[0] for r in rows[:5]] == [
        "`01_data_curation` (of which phantom generation 30.0 s)",
        "`02_preprocessing`",
        "sweep `seeds`: 2 points, in 1 warm kernel, reset between points",
        "`03_a`",
        "`03_b`",
    ]
    assert rows[2][1:] == ["2.8 min", "40.0 s (over 25.0 s of wall time)"]
    rest = {r[0]: r[2] for r in rows[5:]}
    assert rest["the rest (wall − the line above): start-up, preflight, the book build"] == "55.0 s"
    assert rest["in the rest: interpreter start-up and exit (outside the book script)"] == "5.0 s"
    assert rest["in the rest: the book script's imports"] == "5.0 s"
    assert (
        rest[
            "in the rest: `run_profile` outside the notebooks (preflight, build keys, sweep set-up)"
        ]
        == "25.0 s"
    )
    assert rest["in the rest: the Jupyter Book build (`build_book`)"] == "20.0 s"
    os.utime(
        phantom / ".mcalc.lock", (t0 + 1, t0 + 1)
    )  # before notebook 01 started: not its generation
    assert book.stage_times(work)["phantom_s"] is None


def test_sweep_label_says_how_the_points_ran(tmp_path):
    """Warm kernels, fresh kernels, a mix, or no records: each said as it was."""
    sweep = {"name": "s", "points": 3}
    assert book.sweep_kernels(tmp_path) is None
    assert book.sweep_label(sweep | {"kernels": None}).endswith("kernels not recorded")
    for name, kernel in (("a", {"warm": False}), ("b", {"warm": True, "points_before": 0})):
        (tmp_path / f"{name}.json").write_text(json.dumps({"kernel": kernel}))
    (tmp_path / "c.json").write_text(json.dumps({"kernel": {"warm": True, "points_before": 1}}))
    mixed = book.sweep_kernels(tmp_path)
    assert mixed == {"warm": 2, "kernels": 2}
    assert book.sweep_label(sweep | {"kernels": mixed}) == (
        "sweep `s`: 3 points, 2 in warm kernels, reset between points; 2 kernels started"
    )
    fresh = {"warm": 0, "kernels": 3}
    assert book.sweep_label(sweep | {"kernels": fresh}).endswith("3 points, one fresh kernel each")


def _book_row(scale: float, wall_s: float, phantom_s: float | None, returncode: int = 0) -> dict:
    """A book row as bench_book records it, with only the stage figures the report reads."""
    stages = {
        "notebook_s": {},
        "notebook_start": {},
        "sweeps": [],
        "busy_s": wall_s - 20.0,
        "phantom_s": phantom_s,
        "clock": {},
    }
    return {
        "scale": scale,
        "wall_s": wall_s,
        "returncode": returncode,
        "error": "",
        "peak_rss_bytes": 2e9,
        "peak_tree_rss_bytes": 2.4e9,
        "stages": stages,
    }


def test_book_target_judges_the_cold_book_and_shows_the_kept_phantom_beside_it():
    """≤ 6 min on the fully cold wall time; wall − phantom generation is shown, never judged."""
    from benchmarks.config import TARGET_BOOK_S

    assert TARGET_BOOK_S == 360
    results = {"machine": {"cores": 2}, "book": {"rows": [_book_row(1.0, 380.0, 40.0)]}}
    name, measured, verdict = report.targets(results)[0].row()
    assert name.startswith("whole book, default data (scale 1), cold, ≤ 6 min")
    assert measured.startswith("cold 6.3 min; with the phantom kept: 5.7 min (computed")
    assert verdict == "MISS"
    results["book"]["rows"] = [_book_row(1.0, 350.0, None)]
    _, measured, verdict = report.targets(results)[0].row()
    assert "with the phantom kept: not recorded" in measured and verdict == "PASS"
    results["book"]["rows"] = [_book_row(1.0, 350.0, 40.0, returncode=1)]
    assert report.targets(results)[0].verdict == "MISS"
    results["book"]["rows"] = [_book_row(0.1, 100.0, 10.0)]
    assert report.targets(results)[0].row()[1:] == ["not measured (run with `--book`)", "n/a"]


def test_book_section_renders_the_stage_table_of_the_largest_scale():
    """The scale table has the phantom and kept-phantom columns (dashes for rows without stages, as
    kept by --merge from older runs); the stage table is the largest finished scale's."""
    old = {k: v for k, v in _book_row(0.1, 100.0, None).items() if k != "stages"}
    rows = [old, _book_row(0.5, 200.0, 20.0), _book_row(1.0, 300.0, 30.0, returncode=1)]
    lines = book.render({"book": {"rows": rows}})
    text = "\n".join(lines)
    assert "| 0.1 | 100.0 s | — | — |" in text
    assert "| 0.5 | 3.3 min | 20.0 s | 3.0 min |" in text
    assert "| 1 | 5.0 min | 30.0 s | — |" in text
    assert "### Where the time went, scale 0.5" in lines
    assert "| wall (the whole subprocess) |  | 3.3 min |" in text
    assert book.render({}) == []


def test_the_floor_is_the_backbone_passes_at_the_ceiling_and_is_said_from_its_figures(tmp_path):
    """Feature rows of an empty cache count the passes (GLCM rows in their subfolder do not); the
    floor is passes × FLOPs / ceiling, in the target row, the section, and the bottom line."""
    for key in ("ab" + "0" * 62, "ab" + "1" * 62, "cd" + "2" * 62):
        (tmp_path / key[:2]).mkdir(exist_ok=True)
        (tmp_path / key[:2] / f"{key}.npz").write_bytes(b"")
    (tmp_path / "glcm" / "ef").mkdir(parents=True)
    (tmp_path / "glcm" / "ef" / ("ef" * 32 + ".npz")).write_bytes(b"")
    assert book.backbone_rows(tmp_path) == 3 and book.backbone_rows(tmp_path / "none") == 0

    row = _book_row(1.0, 900.0, 30.0)
    row["stages"]["backbone_rows"] = 3000
    backbone = {"flops_per_image": 20e9, "ceiling": {"flops_per_s": 150e9}}
    results = {"machine": {"cores": 2}, "book": {"rows": [row]}, "backbone": backbone}
    assert book.floor_s(results, row) == pytest.approx(400.0)  # 3000 × 20 GFLOP / 150 GFLOP/s
    assert book.floor_s({"book": results["book"]}, row) is None  # section 1 not run
    assert (
        "its floor, the backbone's passes at the machine's ceiling: 6.7 min"
        in report.targets(results)[0].measured
    )
    sentence = book.floor_sentence(results, row)
    assert "alone take 6.7 min, more than the 6.0 min target by 40.0 s" in sentence
    assert sentence.endswith("The whole cold book took 15.0 min, 2.2× that floor.")
    text = "\n".join(book.render(results))
    assert "### The floor of a cold book, scale 1" in text
    assert (
        "| backbone forward passes in the cold build (feature rows written to the empty cache) | 3,000 |"
        in text
    )
    row["stages"]["backbone_rows"] = 1500  # 200 s: within the target
    assert "56% of the 6.0 min target, leaving 2.7 min" in book.floor_sentence(results, row)

    line = report.bottom_line(report.targets(results))
    assert line.startswith("**Bottom line:** 1 of 2 targets met. Missed: whole book: cold 15.0 min")
    assert "against ≤ 6 min, where the backbone's passes alone take 3.3 min" in line
    row["wall_s"] = 300.0
    assert report.bottom_line(report.targets(results)) == ("**Bottom line:** 2 of 2 targets met.")
    assert "no target was measured" in report.bottom_line([report.Target("x", "y", "n/a")])


def test_the_report_opens_with_its_bottom_line():
    """A reader's first line is the verdict, before the run's command line and the machine."""
    machine = {"cpu": "x", "cores": 2, "ram_gb": 8, "device": "CPU"}
    machine |= {"tensorflow": "2", "keras": "3", "python": "3.11"}
    results = {
        "machine": machine,
        "config": {"weights": "random"},
        "date": "2026-12-03",
        "argv": " --only book",
        "quick": False,
        "book": {"rows": [_book_row(1.0, 900.0, 30.0)]},
    }
    lines = report.render(results).splitlines()
    assert lines[0].startswith("**Bottom line:** 1 of 2 targets met. Missed: whole book: cold 15.0")
    assert lines[2].startswith("Measured 2026-12-03 with `python benchmarks/run.py --only book`")


def test_the_bottom_line_says_each_missed_target_from_its_own_parts():
    """Subject, figure and threshold come from each target's fields, not from its rendered cells."""
    results = {
        "training": {"speedup": 40.0, "same_weights": True, "full": {"epochs": 20}},
        "extraction": {"ratio": 0.7, "process_peak_rss_bytes": 5e9},
    }
    rows = report.targets(results)
    assert [t.subject for t in rows if t.judged] == [
        "peak RSS of benchmark process (backbone, extraction)",
        "cached path",
        "end-to-end extraction",
    ]
    assert report.bottom_line(rows) == (
        "**Bottom line:** 0 of 3 targets met. Missed: peak RSS of benchmark process (backbone, "
        "extraction): 5.00 GB against ≤ 4 GB; cached path: 40× against ≥ 50×; end-to-end "
        "extraction: 70% against ≥ 85%."
    )
    results["training"] |= {"speedup": 60.0, "same_weights": False}
    results["extraction"] |= {"ratio": 0.9, "process_peak_rss_bytes": 1e9}
    assert report.bottom_line(report.targets(results)) == (
        "**Bottom line:** 2 of 3 targets met. Missed: cached path: 60× with different weights "
        "against ≥ 50×."
    )


def test_extraction_and_training_are_measured_before_the_backbone_variants(monkeypatch, tmp_path):
    """Section 1 leaves its variants' models in the process: sections 3 and 4 run before it."""
    import mcalc.learn.backbone as mb
    import mcalc.learn.model as mm
    import mcalc.learn.weights as mw

    calls: list[str] = []
    monkeypatch.setattr(mw, "resolve_weights", lambda spec: "w")
    monkeypatch.setattr(mm, "build_backbone", lambda *a: "model")
    monkeypatch.setattr(mb, "inference_model", lambda model, variant: "fast")
    monkeypatch.setattr(backbone, "bare_throughput", lambda *a: {"images_per_s": 1.0})
    for module, name, section in (
        (data, "bench_data", "data"),
        (extraction, "bench_extraction", "extraction"),
        (training, "bench_training", "training"),
        (backbone, "bench_backbone", "backbone"),
        (threads, "bench_threads", "threads"),
    ):
        monkeypatch.setattr(
            module,
            name,
            lambda *a, section=section: calls.append(section) or {"images_per_s": 2.0},
        )
    cfg = run.BenchConfig(work_dir=tmp_path)
    results = run.run(cfg, ["backbone", "data", "extraction", "training"])
    assert calls == ["data", "extraction", "training", "backbone", "threads"]
    assert set(results) >= {"backbone", "data", "extraction", "training"}
