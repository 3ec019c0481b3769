"""Cost benchmark of the study, measured on the machine it runs on; prints a markdown table.

Sections, numbered as published in RESULTS.md (``--only`` picks some; ``--book`` adds the last one),
one module each in this folder:

1. ``backbone``   — InceptionResNetV2 forward throughput on random tensors, and the same as a fraction
   of the machine's dense-convolution ceiling (a large Conv2D timed in TensorFlow), for each way of
   running it (:data:`mcalc.learn.backbone.VARIANTS`: plain Keras, XLA, batch norm folded, both, and
   the opt-in bfloat16 folded model against the same convolution in bfloat16), and
   for each of TensorFlow's thread-pool settings (``threads``, one process each);
2. ``data``       — ``mcalc phantom`` and ``mcalc curate`` as subprocesses: ROIs/s and peak RSS;
3. ``extraction`` — :func:`mcalc.learn.features.extract_features` end to end on the phantom (DICOM read, crop,
   resize, backbone, cache writes) against the bare backbone's throughput;
4. ``training``   — head training on cached features against a naive frozen-backbone ``model.fit`` on
   images, four optimizers, with a check that both give the same head weights (the naive path is
   measured on a subset and extrapolated);
5. ``book``       — wall time and peak RSS of the whole book at several phantom scales, and where the
   time went (each notebook, the sweep points, the phantom's generation, the rest).

They run in the order 2, 3, 4, 1, 5: section 1 leaves its variants' models in the process, and the
end-to-end extraction is measured as the book runs it, in a process without them.

Run from the repository root: ``python benchmarks/run.py [--quick] [--only ...] [--book] [--write]``.
Generated data go to ``build/bench/``; raw figures to ``benchmarks/results/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the benchmarks package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import backbone, book, data, extraction, rebuild, threads, training
from benchmarks.config import QUICK, BenchConfig
from benchmarks.markdown import MERGE_SEPARATOR
from benchmarks.measure import busy_cpu_s, machine_info, own_cpu_s
from benchmarks.report import render
from mcalc.records.fsio import write_text

HERE = Path(__file__).resolve().parent
#: Every section, in its published order; the default run leaves out the book.
SECTIONS = ("backbone", "data", "extraction", "training", "book")
DEFAULT_SECTIONS = ("backbone", "data", "extraction", "training")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    p.add_argument(
        "--book", action="store_true", help="also time the whole book at several phantom scales"
    )
    p.add_argument(
        "--write", action="store_true", help="also write the table to benchmarks/RESULTS.md"
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other sections (and other book scales) of the last run, benchmarks/results/latest.json",
    )
    p.add_argument(
        "--scale",
        type=float,
        help="phantom scale of the data and extraction sections (default 0.25)",
    )
    p.add_argument(
        "--batch-size", type=int, help="backbone batch of sections 1, 3 and 4 (default 32)"
    )
    p.add_argument("--repeats", type=int, help="timed repeats of each measurement (default 5)")
    p.add_argument(
        "--book-scales", type=float, nargs="+", help="phantom scales of the book section"
    )
    p.add_argument(
        "--weights", default="random", help="backbone weights (cost does not depend on them)"
    )
    p.add_argument("--work-dir", type=Path, help="folder for generated data (default build/bench)")
    p.add_argument(
        "--results-dir", type=Path, default=HERE / "results", help="folder of the raw JSON figures"
    )
    p.add_argument("--markdown", type=Path, default=HERE / "RESULTS.md", help="file --write writes")
    return p


def config_from(args: argparse.Namespace) -> BenchConfig:
    """The benchmark configuration from the command-line options."""
    cfg = BenchConfig(**QUICK) if args.quick else BenchConfig()
    overrides = {
        "scale": args.scale,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "weights": args.weights,
        "work_dir": args.work_dir,
        "book_scales": tuple(args.book_scales) if args.book_scales else None,
    }
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def run(cfg: BenchConfig, sections: list[str]) -> dict:
    """Run the chosen sections (in the order 2, 3, 4, 1, 5: see the module docstring); raw results."""
    results: dict = {
        "machine": machine_info(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
    }
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    model = weights = None
    if {"backbone", "extraction", "training"} & set(sections):
        from mcalc.learn.model import build_backbone
        from mcalc.learn.weights import resolve_weights

        weights = resolve_weights(cfg.weights)
        model = build_backbone(cfg.image_size, weights, cfg.seed)
    fast = None  # the backbone as feature extraction runs it (sections 3 and 4 compare with it)
    if {"extraction", "training"} & set(sections):
        from mcalc.learn.backbone import DEFAULT_VARIANT, inference_model

        fast = inference_model(model, DEFAULT_VARIANT)
    # Sections 3 and 4 run before section 1: its variants (XLA-compiled and cloned models) stay in the
    # process, and measured after them the extraction ran at 76% of the bare backbone where a process
    # without them ran it at 93% (two runs of 2026-12-03). The book extracts in chapter 2's own kernel.
    if "data" in sections:
        print("[bench] 2. phantom + curate", file=sys.stderr, flush=True)
        results["data"] = data.bench_data(cfg)
    bare = None
    if {"extraction", "training"} & set(sections):
        bare = backbone.bare_throughput(fast, cfg)["images_per_s"]
    if "extraction" in sections:
        print("[bench] 3. end-to-end feature extraction", file=sys.stderr, flush=True)
        results["extraction"] = extraction.bench_extraction(fast, weights, bare, cfg)
    if "training" in sections:
        print("[bench] 4. cached vs naive head training", file=sys.stderr, flush=True)
        if results.get("extraction"):
            rate, source = (
                results["extraction"]["images_per_s"],
                f"end-to-end throughput of section {extraction.NUMBER}",
            )
        else:
            rate, source = bare, f"bare backbone throughput (section {extraction.NUMBER} not run)"
        results["training"] = training.bench_training(model, weights, rate, source, cfg)
    if "backbone" in sections:
        print("[bench] 1. backbone throughput", file=sys.stderr, flush=True)
        results["backbone"] = backbone.bench_backbone(model, cfg)
        results["backbone"]["threads"] = threads.bench_threads(cfg)
    if "book" in sections:
        print("[bench] 5. the whole book by scale", file=sys.stderr, flush=True)
        results["book"] = book.bench_book(cfg)
    return results


def merge_results(prior: dict, new: dict, sections: list[str]) -> dict:
    """The last run's figures with the sections just run replaced (book rows replaced scale by scale)."""
    merged = {**prior, **{k: v for k, v in new.items() if k not in SECTIONS}}
    for name in sections:
        if name == "book" and prior.get("book") and new.get("book"):
            rows = {r["scale"]: r for r in prior["book"]["rows"]} | {
                r["scale"]: r for r in new["book"]["rows"]
            }
            merged["book"] = {"rows": [rows[k] for k in sorted(rows)]}
        elif name in new:
            merged[name] = new[name]
    merged["argv"] = f"{prior.get('argv', '')}{MERGE_SEPARATOR}{new.get('argv', '')}"
    merged["benchmark_wall_s"] = prior.get("benchmark_wall_s", 0.0) + new.get(
        "benchmark_wall_s", 0.0
    )
    if prior.get("other_cpu_s") is not None and new.get("other_cpu_s") is not None:
        merged["other_cpu_s"] = prior["other_cpu_s"] + new["other_cpu_s"]
    return merged


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, save the raw figures (and RESULTS.md with --write)."""
    args = build_parser().parse_args(argv)
    cfg = config_from(args)
    sections = list(args.only or DEFAULT_SECTIONS)
    if args.book and "book" not in sections:
        sections.append("book")
    start, busy0, own0 = time.perf_counter(), busy_cpu_s(), own_cpu_s()
    results = run(cfg, sections)
    wall = time.perf_counter() - start
    other = None if busy0 is None else max(0.0, (busy_cpu_s() - busy0) - (own_cpu_s() - own0))
    results.update(
        date=time.strftime("%Y-%m-%d"),
        quick=bool(args.quick),
        argv="".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        benchmark_wall_s=wall,
        other_cpu_s=other,
    )
    latest = args.results_dir / "latest.json"
    if args.merge and latest.is_file():
        results = merge_results(json.loads(latest.read_text()), results, sections)
    text = render(results)
    print(text)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(results, indent=1, default=str)
    write_text(args.results_dir / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json", raw)
    write_text(args.results_dir / "latest.json", raw)
    if args.write:
        write_text(args.markdown, text + rebuild.kept_section(args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
