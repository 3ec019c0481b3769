"""Cost benchmark of the study, measured on the machine it runs on; prints a markdown table.

Sections (``--only`` picks some; ``--book`` adds the last one):

* ``backbone``   — InceptionResNetV2 forward throughput on random tensors, and the same as a fraction of
  the machine's dense-convolution ceiling (a large Conv2D timed in TensorFlow);
* ``data``       — ``mcalc phantom`` and ``mcalc curate`` as subprocesses: ROIs/s and peak RSS;
* ``extraction`` — :func:`mcalc.model.extract_features` end to end on the phantom (DICOM read, crop,
  resize, backbone, cache writes) against the bare backbone's throughput;
* ``training``   — head training on cached features against a naive frozen-backbone ``model.fit`` on
  images, four optimizers, with a check that both give the same head weights (the naive path is
  measured on a subset and extrapolated);
* ``book``       — wall time and peak RSS of the whole book at several phantom scales.

Run from the repository root: ``python benchmarks/run.py [--quick] [--only ...] [--book] [--write]``.
Generated data go to ``build/bench/``; raw figures to ``benchmarks/results/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SECTIONS = ("backbone", "data", "extraction", "training", "book")
DEFAULT_SECTIONS = ("backbone", "data", "extraction", "training")
GB = 1e9

# Targets printed beside the figures.
TARGET_BOOK_S = 600.0
TARGET_RSS_BYTES = 4 * GB
TARGET_SPEEDUP = 50.0
TARGET_EXTRACTION_RATIO = 0.85


@dataclass
class BenchConfig:
    """Sizes of every measurement (the defaults are the paper's setting on the default data)."""

    image_size: int = 299
    batch_size: int = 32
    repeats: int = 5
    conv_hw: int = 35
    conv_channels: int = 256
    conv_batch: int = 32
    conv_kernel: int = 3
    subset_train: int = 32
    subset_val: int = 8
    measured_epochs: int = 3
    epochs: int = 20
    full_scale: float = 1.0
    scale: float = 0.25
    book_scales: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    weights: str = "random"
    seed: int = 0
    work_dir: Path = Path("build/bench")
    features: Path = Path("results/features.npz")
    check_learning_rate: dict = field(
        default_factory=lambda: {"adam": 1e-2, "adagrad": 1e-1, "adadelta": 1.0, "rmsprop": 1e-2}
    )


#: Small sizes for ``--quick`` (a smoke run in well under a minute per section).
QUICK = {
    "image_size": 75,
    "batch_size": 8,
    "repeats": 2,
    "conv_hw": 17,
    "conv_channels": 64,
    "conv_batch": 8,
    "subset_train": 8,
    "subset_val": 4,
    "measured_epochs": 2,
    "epochs": 2,
    "full_scale": 0.02,
    "scale": 0.02,
    "book_scales": (0.02,),
}


# ------------------------------------------------------------------------------------------ machine


def _cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    """Physical memory in bytes."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def machine_info() -> dict:
    """CPU model, cores, RAM, Python / TensorFlow / Keras versions and the compute device."""
    import keras
    import tensorflow as tf

    from mcalc.model import compute_device

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "cpu": _cpu_model(),
        "cores": usable,
        "ram_gb": round(_ram_bytes() / GB, 1),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "device": compute_device(),
        "platform": platform.platform(),
    }


def busy_cpu_s() -> float | None:
    """CPU seconds spent by the whole machine (all processes, all cores) since boot, from /proc/stat; None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def self_peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


# ---------------------------------------------------------------------------------- subprocesses


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident bytes) of every process, read from /proc (empty elsewhere)."""
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            table[int(name)] = (int(fields[1]), int(fields[21]) * page)
        except (OSError, ValueError, IndexError):
            continue
    return table


def tree_rss(root: int, include_root: bool = True) -> int:
    """Summed resident memory of process ``root`` (unless ``include_root`` is false) and all its descendants, in bytes."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid != root or include_root:
            total += table.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return total


@dataclass
class ProcessCost:
    """Wall time and memory of one measured subprocess."""

    command: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int  # largest single process of the command (the kernel's ru_maxrss)
    peak_tree_rss_bytes: int  # largest sampled sum over the process tree (10 Hz)
    log: str


_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_measured(
    command: list[str], log_path: Path, env: dict | None = None, interval_s: float = 0.1
) -> ProcessCost:
    """Run ``command``, sampling its process tree's memory; wall time, peak RSS, exit status, output in ``log_path``.

    The command is started by a small launcher process, whose ``RUSAGE_CHILDREN`` gives the largest
    resident set of the command's processes: Linux carries a process's peak RSS across ``exec``, so
    the peak of a child forked directly from this (large) process would include this process's own.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log_path.with_suffix(".maxrss")
    rss_file.unlink(missing_ok=True)
    peak_tree = [0]
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(rss_file), *map(str, command)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        done = threading.Event()

        def sample() -> None:
            """Record the largest summed RSS of the command's processes (the launcher excluded) until it ends."""
            while not done.wait(interval_s):
                peak_tree[0] = max(peak_tree[0], tree_rss(proc.pid, include_root=False))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        proc.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    try:
        maxrss = int(rss_file.read_text())
    except (OSError, ValueError):
        maxrss = 0
    maxrss = maxrss if sys.platform == "darwin" else maxrss * 1024
    return ProcessCost(
        command=[str(c) for c in command],
        returncode=proc.returncode,
        wall_s=wall,
        peak_rss_bytes=int(maxrss),
        peak_tree_rss_bytes=int(max(peak_tree[0], maxrss)),
        log=str(log_path),
    )


def _tail(path: str, n: int = 5) -> str:
    """Last ``n`` lines of a log file, for error messages."""
    try:
        return " | ".join(Path(path).read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return ""


# ------------------------------------------------------------------------------------- 1. backbone


def _layers(model) -> list:
    """Every layer of ``model``, nested models unrolled."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_layers(layer))
        else:
            out.append(layer)
    return out


def count_flops(model) -> int:
    """FLOPs per image of the Conv2D and Dense layers: 2·out_h·out_w·k_h·k_w·C_in·C_out (Dense: 2·C_in·C_out)."""
    import keras

    total = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            if layer.data_format != "channels_last":
                raise ValueError(f"{layer.name}: only channels_last convolutions are counted")
            kh, kw, cin_per_group, cout = (int(d) for d in layer.kernel.shape)
            _, out_h, out_w, _ = layer.output.shape
            total += 2 * int(out_h) * int(out_w) * kh * kw * cin_per_group * cout
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = (int(d) for d in layer.kernel.shape)
            positions = int(np.prod([int(d) for d in layer.output.shape[1:-1]] or [1]))
            total += 2 * positions * cin * cout
    return total


def _median_time(fn, repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls; and all times."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def conv_ceiling(cfg: BenchConfig) -> dict:
    """Achieved FLOP/s of one large dense Conv2D (``conv_kernel``², C→C channels, ``conv_hw``², ``conv_batch``)."""
    import tensorflow as tf

    k, c, hw, n = cfg.conv_kernel, cfg.conv_channels, cfg.conv_hw, cfg.conv_batch
    rng = np.random.default_rng(cfg.seed)
    x = tf.constant(rng.standard_normal((n, hw, hw, c), dtype=np.float32))
    w = tf.constant((rng.standard_normal((k, k, c, c)) / np.sqrt(k * k * c)).astype(np.float32))
    conv = tf.function(lambda: tf.reduce_sum(tf.nn.conv2d(x, w, strides=1, padding="SAME")))
    median, times = _median_time(lambda: conv().numpy(), cfg.repeats)
    flops = 2 * hw * hw * k * k * c * c * n
    return {
        "shape": f"{k}x{k} conv, {c}->{c} channels, {hw}x{hw}, batch {n}, SAME padding, float32",
        "flops_per_call": flops,
        "median_s": median,
        "times_s": times,
        "flops_per_s": flops / median,
    }


def bare_throughput(backbone, cfg: BenchConfig) -> dict:
    """Images/s of ``backbone.predict_on_batch`` on random tensors (batch ``batch_size``, median of repeats)."""
    rng = np.random.default_rng(cfg.seed)
    batch = rng.uniform(-1, 1, (cfg.batch_size, cfg.image_size, cfg.image_size, 3)).astype(
        np.float32
    )
    median, times = _median_time(lambda: np.asarray(backbone.predict_on_batch(batch)), cfg.repeats)
    return {
        "batch": cfg.batch_size,
        "repeats": cfg.repeats,
        "median_s": median,
        "times_s": times,
        "images_per_s": cfg.batch_size / median,
    }


def bench_backbone(backbone, cfg: BenchConfig) -> dict:
    """Section 1: backbone throughput, its FLOPs per image and the fraction of the convolution ceiling."""
    flops = count_flops(backbone)
    bare = bare_throughput(backbone, cfg)
    ceiling = conv_ceiling(cfg)
    achieved = flops * bare["images_per_s"]
    return {
        "image_size": cfg.image_size,
        "flops_per_image": flops,
        **bare,
        "achieved_flops_per_s": achieved,
        "ceiling": ceiling,
        "fraction_of_ceiling": achieved / ceiling["flops_per_s"],
    }


# ----------------------------------------------------------------------------------------- 3. data


def phantom_dir(cfg: BenchConfig, scale: float) -> Path:
    """Where the benchmark's phantom of ``scale`` lives."""
    return cfg.work_dir / "data" / f"phantom-{scale:g}"


def _remove_phantom(root: Path) -> None:
    """Delete a previous benchmark phantom (only a folder that holds a phantom.json marker, or nothing)."""
    if root.exists():
        if not (root / "phantom.json").is_file() and any(root.iterdir()):
            raise RuntimeError(f"{root} exists and is not a phantom; refusing to delete it")
        shutil.rmtree(root)


def bench_data(cfg: BenchConfig) -> dict:
    """Section 3: ``mcalc phantom`` and ``mcalc curate`` as subprocesses at ``cfg.scale``: ROIs/s and peak RSS."""
    import importlib.util

    root = phantom_dir(cfg, cfg.scale)
    _remove_phantom(root)
    logs = cfg.work_dir / "logs"
    python = sys.executable
    phantom = run_measured(
        [
            python,
            "-m",
            "mcalc",
            "phantom",
            str(root),
            "--scale",
            f"{cfg.scale:g}",
            "--seed",
            str(cfg.seed),
            "--quiet",
        ],
        logs / "phantom.log",
    )
    if phantom.returncode != 0:
        raise RuntimeError(
            f"mcalc phantom failed (exit {phantom.returncode}): {_tail(phantom.log)}"
        )
    n_rois = int(json.loads((root / "phantom.json").read_text())["summary"]["n_rois"])
    out = {
        "scale": cfg.scale,
        "n_rois": n_rois,
        "phantom": asdict(phantom),
        "phantom_rois_per_s": n_rois / phantom.wall_s,
    }
    if importlib.util.find_spec("mcalc.curation") is None:
        out["curate"] = None
        out["curate_skipped"] = "mcalc.curation is not available in this checkout"
        return out
    manifest = cfg.work_dir / "curate" / f"phantom-{cfg.scale:g}" / "manifest.csv"
    curate = run_measured(
        [python, "-m", "mcalc", "curate", str(root), "--out", str(manifest), "--quiet"],
        logs / "curate.log",
    )
    if curate.returncode != 0:
        raise RuntimeError(f"mcalc curate failed (exit {curate.returncode}): {_tail(curate.log)}")
    out.update(
        curate=asdict(curate), curate_rois_per_s=n_rois / curate.wall_s, manifest=str(manifest)
    )
    return out


def _crop_paths_from_csvs(root: Path) -> tuple[list[str], list[str]]:
    """Crop DICOM paths of a phantom read from its CSVs, leaving out the ROIs of quirks.csv; (paths, left-out ids)."""
    import pandas as pd

    bad = (
        set(pd.read_csv(root / "quirks.csv")["roi_id"])
        if (root / "quirks.csv").is_file()
        else set()
    )
    paths, left_out = [], []
    for csv in sorted(root.glob("calc_case_description_*_set.csv")):
        table = pd.read_csv(csv, dtype=str)
        for rel in table["cropped image file path"]:
            rel = str(rel).strip()
            roi_id = rel.split("/", 1)[0]
            if roi_id in bad:
                left_out.append(roi_id)
            else:
                paths.append(str(root / "CBIS-DDSM" / rel))
    return paths, left_out


def usable_crop_paths(root: Path) -> tuple[list[str], str]:
    """The crop paths of the usable ROIs of a phantom (curated when mcalc.curation exists) and how they were found."""
    try:
        from mcalc.curation import curate
    except ImportError:
        paths, left_out = _crop_paths_from_csvs(root)
        return paths, (
            f"crop paths from the phantom's CSVs ({len(left_out)} ROIs with injected download faults "
            f"left out; mcalc.curation not available)"
        )
    result = curate(root, progress=False)
    ok = result.manifest[result.manifest["status"] == "ok"]
    return list(
        ok["crop_path"]
    ), f"usable ROIs of the curated manifest ({len(result.manifest) - len(ok)} excluded)"


# ----------------------------------------------------------------------------------- 4. extraction


def extraction_breakdown(paths: list[str], cfg: BenchConfig, n: int = 32) -> dict:
    """Single-thread cost per image of the CPU steps around the backbone: sha256, DICOM read, preprocessing, cache write."""
    from mcalc.cache import FeatureCache, file_digest
    from mcalc.preprocessing import PreprocessConfig, preprocess_roi, read_dicom_image

    sample = paths[: max(1, n)]
    pre = PreprocessConfig(image_size=cfg.image_size)
    preprocess_roi(read_dicom_image(sample[0]), pre)  # warm up TensorFlow's resize kernel
    times = {"sha256": 0.0, "dicom_read": 0.0, "preprocess": 0.0, "cache_write": 0.0}
    cache = FeatureCache(cfg.work_dir / "cache-breakdown")
    row = np.zeros(1536, np.float32)
    pixels = 0
    for i, p in enumerate(sample):
        t0 = time.perf_counter()
        file_digest(p)
        t1 = time.perf_counter()
        img = read_dicom_image(p)
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
    """Section 4: extract_features end to end (empty cache) on the phantom vs the bare backbone's throughput."""
    from mcalc.model import extract_features
    from mcalc.preprocessing import PreprocessConfig

    root = phantom_dir(cfg, cfg.scale)
    if not (root / "phantom.json").is_file():
        from mcalc.phantom import PhantomConfig, generate_phantom

        _remove_phantom(root)
        generate_phantom(root, PhantomConfig(scale=cfg.scale, seed=cfg.seed), progress=False)
    paths, how = usable_crop_paths(root)
    cache_dir = cfg.work_dir / "cache-extraction"
    shutil.rmtree(cache_dir, ignore_errors=True)
    predict_times: list[float] = []
    _timed_method(backbone, "predict_on_batch", predict_times)
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
        * _cores()
        / (backbone_s * _cores() + breakdown["cpu_s_per_image"]),
        "process_peak_rss_bytes": self_peak_rss(),
    }


def _cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------- 2. training


def full_sizes(cfg: BenchConfig) -> dict:
    """Sizes of the default run: all usable ROIs, the training ROIs and the validation ROIs of the train split."""
    from mcalc.phantom import PhantomConfig, plan_phantom

    features = None
    if cfg.features.is_file():
        with np.load(cfg.features, allow_pickle=False) as z:
            features = np.asarray(z["X"], dtype=np.float32)
    rois = {"train": 0, "test": 0}
    for patient in plan_phantom(PhantomConfig(scale=cfg.full_scale, seed=cfg.seed)):
        rois[patient["split"]] += sum(len(image["rois"]) for image in patient["images"])
    n_all = rois["train"] + rois["test"]
    source = f"phantom plan at scale {cfg.full_scale:g} (before exclusions)"
    if features is not None:
        n_all, source = len(features), f"{cfg.features} ({len(features)} cached feature rows)"
    n_train_split = round(n_all * rois["train"] / (rois["train"] + rois["test"]))
    n_val = 200 if n_train_split >= 1000 else max(1, round(0.2 * n_train_split))
    return {
        "n_all": n_all,
        "n_train": n_train_split - n_val,
        "n_val": n_val,
        "source": source,
        "features": features,
    }


def _timed_method(obj, name: str, times: list[float]) -> None:
    """Wrap the method ``name`` of ``obj`` (on the instance) so that every call's wall time is appended to ``times``."""
    method = getattr(obj, name)

    def timed(*args, **kwargs):
        """The wrapped method, timed."""
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)

    setattr(obj, name, timed)


def _predict_features(backbone, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Backbone features of ``images`` the way extract_features computes them (padded fixed-size batches)."""
    out = []
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size]
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate(
                [batch, np.zeros((batch_size - n, *batch.shape[1:]), batch.dtype)]
            )
        out.append(np.asarray(backbone.predict_on_batch(batch))[:n])
    return np.concatenate(out)


def bench_training(
    backbone, weights, extraction_images_per_s: float, extraction_source: str, cfg: BenchConfig
) -> dict:
    """Section 2: cached-feature head training vs a naive frozen-backbone fit on images (4 optimizers)."""
    import tensorflow as tf

    from mcalc import model as M

    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)  # both paths round alike on GPUs
    try:
        rng = np.random.default_rng(cfg.seed)
        n_sub = cfg.subset_train + cfg.subset_val
        size = cfg.image_size
        images = rng.uniform(-1, 1, (n_sub, size, size, 3)).astype(np.float32)
        labels = rng.permutation(np.arange(n_sub) % M.N_CLASSES)
        tr, va = slice(0, cfg.subset_train), slice(cfg.subset_train, n_sub)
        feats = _predict_features(backbone, images, cfg.batch_size)

        # (a) the naive path on the subset, and the same subset trained on its cached features
        subset = []
        for opt in M.OPTIMIZERS:
            sub_cfg = M.TrainConfig(
                optimizer=opt,
                learning_rate=cfg.check_learning_rate[opt],
                epochs=cfg.measured_epochs,
                batch_size=cfg.batch_size,
                seed=cfg.seed,
            )
            cached = M.train_head(feats[tr], labels[tr], feats[va], labels[va], sub_cfg)
            model = M.compile_model(
                M.build_model(
                    size, weights, sub_cfg.hidden_units, seed=sub_cfg.seed, backbone=backbone
                ),
                sub_cfg,
            )
            epoch_times: list[float] = []
            _timed_method(model, "fit", epoch_times)
            start = time.perf_counter()
            naive = M.fit_epochs(model, images[tr], labels[tr], images[va], labels[va], sub_cfg)
            wall = time.perf_counter() - start
            initial = M.build_head(
                feats.shape[1], sub_cfg.hidden_units, M.N_CLASSES, sub_cfg.seed
            ).get_weights()
            got_c, got_n = cached.model.get_weights(), model.get_layer("head").get_weights()
            diff = max(float(np.abs(a - b).max()) for a, b in zip(got_c, got_n))
            moved = max(float(np.abs(a - w0).max()) for a, w0 in zip(got_c, initial))
            loss_diff = float(
                np.abs(cached.history["loss"].to_numpy() - naive.history["loss"].to_numpy()).max()
            )
            subset.append(
                {
                    "optimizer": opt,
                    "learning_rate": sub_cfg.learning_rate,
                    "naive_wall_s": wall,
                    "naive_epoch_s": epoch_times,
                    "cached_wall_s": cached.elapsed_s,
                    "max_weight_diff": diff,
                    "max_weight_change": moved,
                    "max_loss_diff": loss_diff,
                    "same_weights": bool(diff <= max(1e-5, 1e-3 * moved) and moved > 10 * diff),
                }
            )
            del model

        # (b) the cached path at the full size: features (real ones when cached) + 4 × epochs of head training
        sizes = full_sizes(cfg)
        X = sizes.pop("features")
        if X is None:
            X = rng.standard_normal((sizes["n_all"], M.N_FEATURES)).astype(np.float32)
        y = rng.integers(0, M.N_CLASSES, len(X))
        a, b = sizes["n_train"], sizes["n_train"] + sizes["n_val"]
        full = []
        for opt in M.OPTIMIZERS:
            full_cfg = M.TrainConfig(
                optimizer=opt, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed
            )
            start = time.perf_counter()
            M.train_head(X[:a], y[:a], X[a:b], y[a:b], full_cfg)
            full.append({"optimizer": opt, "wall_s": time.perf_counter() - start})
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(tf32)

    # extrapolation of the naive path: a one-off first-epoch overhead (tracing) plus a per-image epoch cost.
    # The steady epoch is the fastest later epoch of any optimizer (their epochs cost the same backbone
    # forward passes), so the naive figure is a lower bound and the speed-up a conservative one.
    per_image_images = sizes["n_train"] + sizes["n_val"]
    later = [t for row in subset for t in row["naive_epoch_s"][1:]]
    steady = min(later) if later else min(row["naive_epoch_s"][0] for row in subset)
    for row in subset:
        times = row["naive_epoch_s"]
        row["naive_steady_epoch_s"] = steady
        row["naive_first_epoch_overhead_s"] = max(0.0, times[0] - steady)
        row["naive_extrapolated_s"] = (
            row["naive_first_epoch_overhead_s"] + cfg.epochs * steady * per_image_images / n_sub
        )
    extraction_s = sizes["n_all"] / extraction_images_per_s
    head_s = sum(r["wall_s"] for r in full)
    naive_measured = sum(r["naive_wall_s"] for r in subset)
    naive_extrapolated = sum(r["naive_extrapolated_s"] for r in subset)
    return {
        "subset": {
            "n_train": cfg.subset_train,
            "n_val": cfg.subset_val,
            "epochs": cfg.measured_epochs,
            "image_size": size,
            "rows": subset,
            "naive_wall_s": naive_measured,
            "steady_epoch_s": steady,
        },
        "full": {
            **sizes,
            "epochs": cfg.epochs,
            "rows": full,
            "head_training_s": head_s,
            "features": "real cached features"
            if "cached feature rows" in sizes["source"]
            else "random features of the real shape",
            "extraction_s": extraction_s,
            "extraction_images_per_s": extraction_images_per_s,
            "extraction_source": extraction_source,
            "cached_total_s": extraction_s + head_s,
        },
        "naive_extrapolated_s": naive_extrapolated,
        "speedup": naive_extrapolated / (extraction_s + head_s),
        "same_weights": all(r["same_weights"] for r in subset),
    }


# ----------------------------------------------------------------------------------------- 5. book


_BOOK_SCRIPT = """
import sys
from dataclasses import replace
from pathlib import Path
from mcalc.book import assemble, build_book
from mcalc.pipeline import get_profile, run_profile
scale, work = float(sys.argv[1]), Path(sys.argv[2])
profile = replace(get_profile("default", phantom_scale=scale), name=f"bench-{scale:g}",
                  data_root=str(work / "data" / "phantom"), results_dir=str(work / "results"),
                  cache_dir=str(work / "cache"), out_dir=str(work / "executed"))
run_profile(profile)
print("book:", build_book(profile, source=assemble(profile, work / "book")))
"""


def bench_book(cfg: BenchConfig) -> dict:
    """Section 5: the whole book (default profile) at each phantom scale, in fresh folders under the work dir."""
    rows = []
    for scale in cfg.book_scales:
        work = cfg.work_dir / "book" / f"scale-{scale:g}"
        shutil.rmtree(work, ignore_errors=True)
        cost = run_measured(
            [sys.executable, "-c", _BOOK_SCRIPT, f"{scale:g}", str(work)],
            cfg.work_dir / "logs" / f"book-{scale:g}.log",
        )
        rows.append(
            {
                "scale": scale,
                **asdict(cost),
                "error": "" if cost.returncode == 0 else _tail(cost.log),
            }
        )
    return {"rows": rows}


# ----------------------------------------------------------------------------------------- report


def _t(seconds: float) -> str:
    """Seconds as '12.3 s', '4.5 min' or '1.2 h'."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _gb(n: float) -> str:
    """Bytes as GB."""
    return f"{n / GB:.2f} GB"


def _verdict(ok: bool | None) -> str:
    """PASS / MISS / n/a."""
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(str(c) for c in r) + " |" for r in rows),
    ]


def targets(results: dict) -> list[list[str]]:
    """Rows of the targets table: target, measured, verdict."""
    book = results.get("book")
    full_book = next((r for r in (book or {}).get("rows", []) if r["scale"] == 1.0), None)
    rows = []
    if full_book:
        ok = full_book["returncode"] == 0
        rows.append(
            [
                "whole book, default data (scale 1) ≤ 10 min",
                _t(full_book["wall_s"]) + ("" if ok else " (failed)"),
                _verdict(ok and full_book["wall_s"] <= TARGET_BOOK_S),
            ]
        )
        rows.append(
            [
                "peak RSS of the book ≤ 4 GB",
                _gb(full_book["peak_tree_rss_bytes"]) + " (process tree)",
                _verdict(full_book["peak_tree_rss_bytes"] <= TARGET_RSS_BYTES),
            ]
        )
    else:
        rows.append(
            [
                "whole book, default data (scale 1) ≤ 10 min",
                "not measured (run with `--book`)",
                "n/a",
            ]
        )
        steps = []
        if results.get("data"):
            d = results["data"]
            steps.append(("mcalc phantom", d["phantom"]["peak_tree_rss_bytes"]))
            if d.get("curate"):
                steps.append(("mcalc curate", d["curate"]["peak_tree_rss_bytes"]))
        if results.get("extraction"):
            steps.append(
                (
                    "benchmark process (backbone, extraction)",
                    results["extraction"]["process_peak_rss_bytes"],
                )
            )
        if steps:
            name, worst = max(steps, key=lambda s: s[1])
            rows.append(
                [
                    "peak RSS ≤ 4 GB",
                    f"whole book not measured; largest measured step: {name} {_gb(worst)}",
                    _verdict(worst <= TARGET_RSS_BYTES) + " (steps only)",
                ]
            )
        else:
            rows.append(["peak RSS ≤ 4 GB", "not measured", "n/a"])
    tr = results.get("training")
    if tr:
        rows.append(
            [
                f"cached path ≥ {TARGET_SPEEDUP:g}× faster than naive (4 optimizers × {tr['full']['epochs']} epochs)",
                f"{tr['speedup']:.0f}× (naive extrapolated; weights identical: {'yes' if tr['same_weights'] else 'NO'})",
                _verdict(tr["speedup"] >= TARGET_SPEEDUP and tr["same_weights"]),
            ]
        )
    else:
        rows.append([f"cached path ≥ {TARGET_SPEEDUP:g}× faster than naive", "not measured", "n/a"])
    ex = results.get("extraction")
    rows.append(
        [
            f"end-to-end extraction ≥ {TARGET_EXTRACTION_RATIO:.0%} of bare backbone throughput",
            f"{ex['ratio']:.0%}" if ex else "not measured",
            _verdict(ex["ratio"] >= TARGET_EXTRACTION_RATIO) if ex else "n/a",
        ]
    )
    return rows


def render(results: dict) -> str:
    """The markdown report of ``results``."""
    m, cfg = results["machine"], results["config"]
    lines = [
        f"Measured {results['date']} with `python benchmarks/run.py{results['argv']}` "
        f"({'quick sizes' if results['quick'] else 'full sizes'}; backbone weights: {cfg['weights']}, "
        "which does not change any cost).",
        "",
    ]
    lines += _table(
        ["machine", ""],
        [
            ["CPU", m["cpu"]],
            ["cores", m["cores"]],
            ["RAM", f"{m['ram_gb']} GB"],
            ["device", m["device"]],
            ["TensorFlow / Keras", f"{m['tensorflow']} / {m['keras']}"],
            ["Python", m["python"]],
        ],
    )
    if results.get("other_cpu_s") is not None:
        share = results["other_cpu_s"] / (results["benchmark_wall_s"] * m["cores"])
        lines += [
            "",
            f"Benchmark wall time {_t(results['benchmark_wall_s'])}; CPU used meanwhile by other processes "
            f"and the system: {results['other_cpu_s']:.0f} core-seconds ({share:.0%} of the machine)"
            + (" — **the machine was not idle; the figures are disturbed**" if share > 0.1 else "")
            + ".",
        ]
    lines += ["", "**Targets**", ""]
    lines += _table(["target", "measured", "verdict"], targets(results))

    bb = results.get("backbone")
    if bb:
        c = bb["ceiling"]
        lines += ["", "**1. Backbone forward throughput**", ""]
        lines += _table(
            ["quantity", "value"],
            [
                [
                    f"InceptionResNetV2 (no top, avg pool), {bb['image_size']}², random tensors, batch {bb['batch']}",
                    f"{bb['images_per_s']:.2f} images/s (median of {bb['repeats']} batches after 1 warm-up: "
                    f"{bb['median_s']:.2f} s/batch; range {min(bb['times_s']):.2f}–{max(bb['times_s']):.2f} s)",
                ],
                [
                    "FLOPs per image (Conv2D + Dense layers of the built model)",
                    f"{bb['flops_per_image'] / 1e9:.2f} GFLOP",
                ],
                ["achieved by the backbone", f"{bb['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s"],
                [
                    f"dense-convolution ceiling ({c['shape']})",
                    f"{c['flops_per_s'] / 1e9:.1f} GFLOP/s "
                    f"(median {c['median_s']:.3f} s for {c['flops_per_call'] / 1e9:.1f} GFLOP)",
                ],
                ["backbone / ceiling", f"{bb['fraction_of_ceiling']:.0%}"],
            ],
        )
        lines += [
            "",
            "FLOPs: 2·out_h·out_w·k_h·k_w·C_in·C_out summed over every Conv2D of the built model "
            "(Dense: 2·C_in·C_out); batch normalisation, activations, pooling and the residual sums are not "
            "counted. Ceiling: achieved FLOP/s = 2·H·W·k·k·C_in·C_out·N / median time of one TensorFlow "
            "`conv2d` call (1 warm-up call excluded).",
        ]

    d = results.get("data")
    if d:
        lines += [
            "",
            f"**3. Data: phantom generation and curation (scale {d['scale']:g}, {d['n_rois']} ROIs)**",
            "",
        ]
        rows = [
            [
                "`mcalc phantom`",
                _t(d["phantom"]["wall_s"]),
                f"{d['phantom_rois_per_s']:.1f}",
                _gb(d["phantom"]["peak_rss_bytes"]),
                _gb(d["phantom"]["peak_tree_rss_bytes"]),
            ]
        ]
        if d.get("curate"):
            rows.append(
                [
                    "`mcalc curate`",
                    _t(d["curate"]["wall_s"]),
                    f"{d['curate_rois_per_s']:.1f}",
                    _gb(d["curate"]["peak_rss_bytes"]),
                    _gb(d["curate"]["peak_tree_rss_bytes"]),
                ]
            )
        else:
            rows.append(["`mcalc curate`", "not measured", "", "", d.get("curate_skipped", "")])
        lines += _table(
            ["command", "wall", "ROIs/s", "peak RSS, largest process", "peak RSS, process tree"],
            rows,
        )
        lines += [
            "",
            "Each command runs as a subprocess (wall time includes interpreter start-up); largest process: "
            "the kernel's maximum resident set (getrusage of a launcher's children); process tree: summed RSS of the command and its "
            "workers, sampled at 10 Hz.",
        ]

    ex = results.get("extraction")
    if ex:
        br = ex["breakdown"]
        per = br["per_image_s"]
        lines += [
            "",
            f"**4. Feature extraction end to end ({ex['n_images']} phantom ROIs, empty cache)**",
            "",
        ]
        lines += _table(
            ["quantity", "value"],
            [
                [
                    "`extract_features` (sha256, DICOM read, crop normalisation, resize, backbone, cache writes)",
                    f"{ex['images_per_s']:.2f} images/s ({_t(ex['wall_s'])})",
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
                    f"{_t(ex['predict_s'])} ({ex['predict_images_per_s']:.2f} images/s); outside it (hashing, waiting for "
                    f"decoding, cache writes): {_t(ex['outside_predict_s'])}",
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
                    _gb(ex["process_peak_rss_bytes"]),
                ],
            ],
        )
        lines += ["", f"ROIs: {ex['paths']}."]

    tr = results.get("training")
    if tr:
        s, f = tr["subset"], tr["full"]
        lines += [
            "",
            f"**2. Cached-feature head training vs naive frozen-backbone `model.fit` "
            f"(4 optimizers × {f['epochs']} epochs)**",
            "",
        ]
        lines += [
            f"Measured (naive) on a subset: {s['n_train']} training + {s['n_val']} validation ROIs "
            f"(random tensors), {s['image_size']} px, {s['epochs']} epochs per optimizer, batch "
            f"{results['config']['batch_size']}; the same subset trained on its backbone features gives the head "
            "weights compared below (a larger learning rate than the paper's, so that the weights move well "
            "beyond the tolerance; cost does not depend on it).",
            "",
        ]
        rows = []
        for r in s["rows"]:
            rows.append(
                [
                    r["optimizer"],
                    f"{r['learning_rate']:g}",
                    f"{r['naive_wall_s']:.1f} s",
                    " / ".join(f"{t:.1f}" for t in r["naive_epoch_s"]) + " s",
                    f"{r['max_weight_change']:.1e}",
                    f"{r['max_weight_diff']:.1e}",
                    "yes" if r["same_weights"] else "NO",
                    _t(r["naive_extrapolated_s"]),
                ]
            )
        lines += _table(
            [
                "optimizer",
                "lr (check)",
                "naive, measured",
                "per epoch",
                "max weight change",
                "max |cached − naive|",
                "same weights",
                "naive, extrapolated",
            ],
            rows,
        )
        lines += [
            "",
            f"Extrapolated (naive): each optimizer's first-epoch overhead (its epoch 1 − the steady "
            f"epoch: tracing) + {f['epochs']} epochs × the steady epoch ({s['steady_epoch_s']:.2f} s, the "
            f"fastest later epoch of any optimizer, so the naive figure is a lower bound) × ({f['n_train']} + {f['n_val']}) / "
            f"({s['n_train']} + {s['n_val']}) ROIs, i.e. linear in epochs and in ROIs.",
            "",
        ]
        lines += _table(
            ["path", "wall", "how"],
            [
                ["naive, 4 optimizers, measured on the subset", _t(s["naive_wall_s"]), "measured"],
                [
                    f"naive, 4 optimizers × {f['epochs']} epochs, full size",
                    _t(tr["naive_extrapolated_s"]),
                    "**extrapolated**",
                ],
                [
                    f"cached: one feature extraction of {f['n_all']} ROIs",
                    _t(f["extraction_s"]),
                    f"{f['n_all']} / {f['extraction_images_per_s']:.2f} images/s ({f['extraction_source']})",
                ],
                [
                    f"cached: head training, 4 optimizers × {f['epochs']} epochs "
                    f"({f['n_train']} train + {f['n_val']} validation)",
                    _t(f["head_training_s"]),
                    f"measured on {f['features']}: "
                    + ", ".join(f"{r['optimizer']} {r['wall_s']:.1f} s" for r in f["rows"]),
                ],
                ["cached, total", _t(f["cached_total_s"]), ""],
                ["**naive / cached**", f"**{tr['speedup']:.0f}×**", ""],
            ],
        )
        lines += [
            "",
            f"Full size: {f['source']}; validation = 200 ROIs of the train split, as in the default profile "
            "(20 % below 1000 training ROIs).",
        ]

    bk = results.get("book")
    if bk:
        lines += ["", "**5. The whole book (`default` profile) by phantom scale**", ""]
        lines += _table(
            ["scale", "wall", "peak RSS, process tree", "peak RSS, largest process", "status"],
            [
                [
                    f"{r['scale']:g}",
                    _t(r["wall_s"]),
                    _gb(r["peak_tree_rss_bytes"]),
                    _gb(r["peak_rss_bytes"]),
                    "ok" if r["returncode"] == 0 else f"failed: {r['error'][:200]}",
                ]
                for r in bk["rows"]
            ],
        )
        lines += [
            "",
            "Each scale in fresh data / results / cache folders (nothing shared, so the scale-1 row "
            "includes phantom generation and feature extraction).",
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- main


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
        "weights": args.weights,
        "work_dir": args.work_dir,
        "book_scales": tuple(args.book_scales) if args.book_scales else None,
    }
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def run(cfg: BenchConfig, sections: list[str]) -> dict:
    """Run the chosen sections (in the order backbone, data, extraction, training, book); raw results."""
    results: dict = {
        "machine": machine_info(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
    }
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    backbone = weights = None
    if {"backbone", "extraction", "training"} & set(sections):
        from mcalc.model import build_backbone, resolve_weights

        weights = resolve_weights(cfg.weights)
        backbone = build_backbone(cfg.image_size, weights, cfg.seed)
    bare = None
    if "backbone" in sections:
        print("[bench] 1. backbone throughput", file=sys.stderr, flush=True)
        results["backbone"] = bench_backbone(backbone, cfg)
        bare = results["backbone"]["images_per_s"]
    if "data" in sections:
        print("[bench] 3. phantom + curate", file=sys.stderr, flush=True)
        results["data"] = bench_data(cfg)
    if bare is None and {"extraction", "training"} & set(sections):
        bare = bare_throughput(backbone, cfg)["images_per_s"]
    if "extraction" in sections:
        print("[bench] 4. end-to-end feature extraction", file=sys.stderr, flush=True)
        results["extraction"] = bench_extraction(backbone, weights, bare, cfg)
    if "training" in sections:
        print("[bench] 2. cached vs naive head training", file=sys.stderr, flush=True)
        if results.get("extraction"):
            rate, source = (
                results["extraction"]["images_per_s"],
                "end-to-end throughput of section 4",
            )
        else:
            rate, source = bare, "bare backbone throughput (section 4 not run)"
        results["training"] = bench_training(backbone, weights, rate, source, cfg)
    if "book" in sections:
        print("[bench] 5. the whole book by scale", file=sys.stderr, flush=True)
        results["book"] = bench_book(cfg)
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
    merged["argv"] = (
        f"{prior.get('argv', '')}`, then (`--merge`) `python benchmarks/run.py{new.get('argv', '')}"
    )
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
    (args.results_dir / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(raw)
    (args.results_dir / "latest.json").write_text(raw)
    if args.write:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
