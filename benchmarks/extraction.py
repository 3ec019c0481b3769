"""Section 3: :func:`mcalc.learn.features.extract_features` end to end on the phantom (DICOM read, crop,
resize, backbone, cache writes) against the bare backbone's throughput."""

from __future__ import annotations

import shutil
import time

import numpy as np

from benchmarks.backbone import bare_throughput
from benchmarks.config import BenchConfig
from benchmarks.data import phantom_dir, remove_phantom, usable_crop_paths
from benchmarks.markdown import fmt_gb, fmt_s, table
from benchmarks.measure import cores, self_peak_rss, timed_method

NUMBER = 3


def extraction_breakdown(paths: list[str], cfg: BenchConfig, n: int = 32) -> dict:
    """Single-thread cost per image of the CPU steps around the backbone: sha256, DICOM read, preprocessing, cache write."""
    from mcalc.data.images import read_image
    from mcalc.learn.preprocessing import PreprocessConfig, preprocess_roi
    from mcalc.records.cache import FeatureCache, file_digest

    sample = paths[: max(1, n)]
    pre = PreprocessConfig(image_size=cfg.image_size)
    preprocess_roi(read_image(sample[0]), pre)  # warm up TensorFlow's resize kernel
    times = {"sha256": 0.0, "dicom_read": 0.0, "preprocess": 0.0, "cache_write": 0.0}
    cache = FeatureCache(cfg.work_dir / "cache-breakdown")
    row = np.zeros(1536, np.float32)
    pixels = 0
    for i, p in enumerate(sample):
        t0 = time.perf_counter()
        file_digest(p)
        t1 = time.perf_counter()
        img = read_image(p)
        t2 = time.perf_counter()
        preprocess_roi(img, pre)
        t3 = time.perf_counter()
        cache.save(f"{i:064x}", row, {"benchmark": True})
        t4 = time.perf_counter()
        pixels += img.size
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[key] += dt
    shutil.rmtree(cache.root, ignore_errors=True)
    per_image = {k: v / len(sample) for k, v in times.items()}
    return {
        "n": len(sample),
        "mean_crop_pixels": pixels / len(sample),
        "per_image_s": per_image,
        "cpu_s_per_image": sum(per_image.values()),
    }


def bench_extraction(backbone, weights, bare_images_per_s: float, cfg: BenchConfig) -> dict:
    """Section 3: extract_features end to end (empty cache) on the phantom vs the bare backbone's throughput."""
    from mcalc.learn.features import extract_features
    from mcalc.learn.preprocessing import PreprocessConfig

    root = phantom_dir(cfg, cfg.scale)
    if not (root / "phantom.json").is_file():
        from mcalc.data.phantom import PhantomConfig, generate_phantom

        remove_phantom(root)
        generate_phantom(root, PhantomConfig(scale=cfg.scale, seed=cfg.seed), progress=False)
    paths, how = usable_crop_paths(root)
    cache_dir = cfg.work_dir / "cache-extraction"
    shutil.rmtree(cache_dir, ignore_errors=True)
    predict_times: list[float] = []
    timed_method(backbone, "predict_on_batch", predict_times)
    try:
        start = time.perf_counter()
        X = extract_features(
            paths,
            PreprocessConfig(image_size=cfg.image_size),
            weights,
            cache_dir,
            batch_size=cfg.batch_size,
            progress=False,
            seed=cfg.seed,
            backbone=backbone,
        )
        wall = time.perf_counter() - start
    finally:
        del backbone.predict_on_batch  # the class's method again
    shutil.rmtree(cache_dir, ignore_errors=True)
    if X.shape != (len(paths), 1536) or not np.isfinite(X).all():
        raise RuntimeError(f"extract_features returned {X.shape} features for {len(paths)} images")
    rate = len(paths) / wall
    bare_after = bare_throughput(backbone, cfg)[
        "images_per_s"
    ]  # the machine's speed drifts: bracket the run
    bare_mean = (bare_images_per_s + bare_after) / 2
    breakdown = extraction_breakdown(paths, cfg)
    backbone_s = 1.0 / bare_mean  # wall per image when the backbone has every core
    n_computed = (
        len(predict_times) * cfg.batch_size
    )  # the last batch is padded to the full batch size
    return {
        "n_images": len(paths),
        "paths": how,
        "wall_s": wall,
        "images_per_s": rate,
        "bare_before_images_per_s": bare_images_per_s,
        "bare_after_images_per_s": bare_after,
        "bare_images_per_s": bare_mean,
        "ratio": rate / bare_mean,
        "breakdown": breakdown,
        "n_batches": len(predict_times),
        "n_computed": n_computed,
        "predict_s": sum(predict_times),
        "predict_images_per_s": n_computed / sum(predict_times),
        "outside_predict_s": wall - sum(predict_times),
        "padding_bound": len(paths) / n_computed,
        # if the CPU steps only compete with the backbone for the same cores (no idle core to overlap on):
        "serial_model_ratio": backbone_s
        * cores()
        / (backbone_s * cores() + breakdown["cpu_s_per_image"]),
        "process_peak_rss_bytes": self_peak_rss(),
    }


def render(results: dict) -> list[str]:
    """Section 3 of the report (nothing when it was not run)."""
    ex = results.get("extraction")
    if not ex:
        return []
    lines: list[str] = []
    br = ex["breakdown"]
    per = br["per_image_s"]
    lines += [
        "",
        f"## {NUMBER}. Feature extraction end to end ({ex['n_images']} phantom ROIs, empty cache)",
        "",
    ]
    lines += table(
        ["quantity", "value"],
        [
            [
                "`extract_features` (sha256, DICOM read, crop normalisation, resize, backbone, cache writes)",
                f"{ex['images_per_s']:.2f} images/s ({fmt_s(ex['wall_s'])})",
            ],
            [
                "bare backbone, random tensors: mean of the measurements just before and just after",
                f"{ex['bare_images_per_s']:.2f} images/s ({ex['bare_before_images_per_s']:.2f} before, "
                f"{ex['bare_after_images_per_s']:.2f} after)",
            ],
            ["end to end / bare", f"{ex['ratio']:.0%}"],
            [
                f"time inside `predict_on_batch` ({ex['n_batches']} batches of {results['config']['batch_size']}, "
                f"{ex['n_computed']} images incl. the padded last batch)",
                f"{fmt_s(ex['predict_s'])} ({ex['predict_images_per_s']:.2f} images/s); outside it (hashing, waiting for "
                f"decoding, cache writes): {fmt_s(ex['outside_predict_s'])}",
            ],
            ["upper bound from padding the last batch alone", f"{ex['padding_bound']:.0%}"],
            [
                f"CPU steps per image, one thread (mean of {br['n']}, crops of {br['mean_crop_pixels'] / 1e3:.0f} kpx)",
                f"sha256 {per['sha256'] * 1e3:.1f} ms, DICOM read {per['dicom_read'] * 1e3:.1f} ms, "
                f"normalise + resize + `preprocess_input` {per['preprocess'] * 1e3:.1f} ms, "
                f"cache write {per['cache_write'] * 1e3:.1f} ms: {br['cpu_s_per_image'] * 1e3:.1f} ms",
            ],
            [
                "expected ratio if those steps only take cores from the backbone",
                f"{ex['serial_model_ratio']:.0%}",
            ],
            [
                "peak RSS of the benchmark process after extraction",
                fmt_gb(ex["process_peak_rss_bytes"]),
            ],
        ],
    )
    lines += ["", f"ROIs: {ex['paths']}."]
    return lines
