"""Section 1: InceptionResNetV2 forward throughput on random tensors, and its fraction of the
machine's dense-convolution ceiling (one large Conv2D timed in TensorFlow); thread pools: threads.py."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.config import BenchConfig
from benchmarks.markdown import commands, table
from benchmarks.measure import median_time

NUMBER = 1
#: Other batch sizes the default variant is timed at (beside the configured one).
OTHER_BATCHES = (8, 32)


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


def conv_ceiling_fn(cfg: BenchConfig, dtype: str = "float32"):
    """A callable running the ceiling's convolution once in ``dtype`` (see :func:`conv_ceiling`)."""
    import tensorflow as tf

    k, c, hw, n = cfg.conv_kernel, cfg.conv_channels, cfg.conv_hw, cfg.conv_batch
    rng = np.random.default_rng(cfg.seed)
    x = tf.cast(rng.standard_normal((n, hw, hw, c), dtype=np.float32), dtype)
    w = tf.cast((rng.standard_normal((k, k, c, c)) / np.sqrt(k * k * c)).astype(np.float32), dtype)
    conv = tf.function(lambda: tf.reduce_sum(tf.nn.conv2d(x, w, strides=1, padding="SAME")))
    return lambda: conv().numpy()


def conv_ceiling(cfg: BenchConfig) -> dict:
    """Achieved FLOP/s of one large dense Conv2D (``conv_kernel``², C→C channels, ``conv_hw``², ``conv_batch``)."""
    k, c, hw, n = cfg.conv_kernel, cfg.conv_channels, cfg.conv_hw, cfg.conv_batch
    median, times = median_time(conv_ceiling_fn(cfg), cfg.repeats)
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
    median, times = median_time(lambda: np.asarray(backbone.predict_on_batch(batch)), cfg.repeats)
    return {
        "batch": cfg.batch_size,
        "repeats": cfg.repeats,
        "median_s": median,
        "times_s": times,
        "images_per_s": cfg.batch_size / median,
    }


def _random_batch(cfg: BenchConfig, batch: int) -> np.ndarray:
    """A seeded batch of random images in the backbone's input range."""
    rng = np.random.default_rng(cfg.seed)
    return rng.uniform(-1, 1, (batch, cfg.image_size, cfg.image_size, 3)).astype(np.float32)


def _timed(fn) -> float:
    """Wall seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def variant_runs(cfg: BenchConfig) -> list[tuple[str, int]]:
    """(variant, batch) pairs section 1 times: every variant at the configured batch, the default variant at others."""
    from mcalc.learn.backbone import DEFAULT_VARIANT, VARIANTS

    runs = [(v, cfg.batch_size) for v in VARIANTS]
    runs += [(DEFAULT_VARIANT, b) for b in OTHER_BATCHES if b != cfg.batch_size]
    return runs


def bench_variants(backbone, cfg: BenchConfig) -> dict:
    """Every variant (and batch) timed in interleaved rounds with the ceiling; paired ratios to plain, feature differences.

    A reduced-precision variant (bfloat16) is also timed against the ceiling's convolution in its
    own arithmetic (``ceiling_bf16``), so its share of a ceiling compares like with like.
    """
    from mcalc.learn.backbone import REDUCED_PRECISION, inference_model

    models, prepare_s, first_s, diff = {}, {}, {}, {}
    runs = variant_runs(cfg)
    for variant in dict.fromkeys(v for v, _ in runs):
        start = time.perf_counter()
        models[variant] = inference_model(backbone, variant)
        prepare_s[variant] = time.perf_counter() - start
    batches = {b: _random_batch(cfg, b) for _, b in runs}
    reference = np.asarray(backbone.predict_on_batch(batches[cfg.batch_size]))
    scale = float(np.abs(reference).max())
    for variant, b in runs:  # the first call traces (and for XLA compiles) its function
        start = time.perf_counter()
        out = np.asarray(models[variant].predict_on_batch(batches[b]))
        first_s[f"{variant}@{b}"] = time.perf_counter() - start
        if b == cfg.batch_size:
            diff[variant] = float(np.abs(out - reference).max()) / scale
    ceilings = {"ceiling": conv_ceiling_fn(cfg)}
    if any(v in REDUCED_PRECISION for v, _ in runs):  # their own arithmetic's ceiling, same rounds
        ceilings["ceiling_bf16"] = conv_ceiling_fn(cfg, "bfloat16")
    for fn in ceilings.values():
        fn()
    rounds: list[dict] = []
    for _ in range(cfg.repeats):
        times = {name: _timed(fn) for name, fn in ceilings.items()}
        for variant, b in runs:
            model, batch = models[variant], batches[b]
            start = time.perf_counter()
            model.predict_on_batch(batch)
            times[f"{variant}@{b}"] = time.perf_counter() - start
        times.update({f"{name}_after": _timed(fn) for name, fn in ceilings.items()})
        rounds.append(times)
    return {
        "runs": [f"{v}@{b}" for v, b in runs],
        "prepare_s": prepare_s,
        "first_call_s": first_s,
        "max_abs_diff_rel": diff,
        "feature_scale": scale,
        "rounds": rounds,
    }


def summarize_variants(var: dict, flops_per_image: int, cfg: dict) -> list[dict]:
    """Per run: median images/s, % of the ceiling (same rounds), median paired speed-up over plain."""
    import statistics

    from mcalc.learn.backbone import REDUCED_PRECISION

    rounds = var["rounds"]
    ceiling_flops = 2 * cfg["conv_hw"] ** 2 * cfg["conv_kernel"] ** 2 * cfg["conv_channels"] ** 2
    ceiling_flops *= cfg["conv_batch"]

    def ceilings(name: str) -> list[float]:
        """A ceiling's FLOP/s per round: the faster of its two calls (before and after the round's variants)."""
        return [ceiling_flops / min(r[name], r[f"{name}_after"]) for r in rounds]

    plain = f"plain@{cfg['batch_size']}"
    out = []
    for run in var["runs"]:
        batch = int(run.split("@")[1])
        reduced = run.split("@")[0] in REDUCED_PRECISION and "ceiling_bf16" in rounds[0]
        rates = [batch / r[run] for r in rounds]
        own = ceilings("ceiling_bf16" if reduced else "ceiling")
        fractions = [flops_per_image * rate / c for rate, c in zip(rates, own)]
        speedups = [(r[plain] / int(plain.split("@")[1])) / (r[run] / batch) for r in rounds]
        out.append(
            {
                "run": run,
                "ceiling": "bfloat16" if reduced else "float32",
                "ceiling_flops_per_s": statistics.median(own),
                "images_per_s": statistics.median(rates),
                "fraction_of_ceiling": statistics.median(fractions),
                "fraction_range": (min(fractions), max(fractions)),
                "speedup_vs_plain": statistics.median(speedups),
                "speedup_range": (min(speedups), max(speedups)),
            }
        )
    return out


def bench_backbone(backbone, cfg: BenchConfig) -> dict:
    """Section 1: throughput, FLOPs per image, fraction of the ceiling; every variant, every thread-pool setting."""
    from mcalc.learn.backbone import DEFAULT_VARIANT, inference_model

    flops = count_flops(backbone)
    variants = bench_variants(backbone, cfg)
    bare = bare_throughput(inference_model(backbone, DEFAULT_VARIANT), cfg)
    ceiling = conv_ceiling(cfg)
    achieved = flops * bare["images_per_s"]
    return {
        "image_size": cfg.image_size,
        "flops_per_image": flops,
        "variant": DEFAULT_VARIANT,
        **bare,
        "achieved_flops_per_s": achieved,
        "ceiling": ceiling,
        "fraction_of_ceiling": achieved / ceiling["flops_per_s"],
        "variants": variants,
    }


def _variant_rows(bb: dict, cfg: dict) -> list[list[str]]:
    """Rows of the variants table."""
    var = bb["variants"]
    rows = []
    ideal = bb["flops_per_image"]
    for s in summarize_variants(var, ideal, cfg):
        variant = s["run"].split("@")[0]
        lo, hi = s["fraction_range"]
        slo, shi = s["speedup_range"]
        diff = var["max_abs_diff_rel"].get(variant)
        first = var["first_call_s"][s["run"]]
        rows.append(
            [
                s["run"].replace("@", ", batch "),
                f"{s['images_per_s']:.2f}",
                f"{s['fraction_of_ceiling']:.0%} ({lo:.0%}–{hi:.0%})"
                + (
                    f" of the bfloat16 ceiling ({s['ceiling_flops_per_s'] / 1e9:.0f} GFLOP/s)"
                    if s.get("ceiling") == "bfloat16"
                    else ""
                ),
                f"{s['speedup_vs_plain']:.2f}× ({slo:.2f}–{shi:.2f})",
                "—" if diff is None else f"{diff:.1e}",
                f"{var['prepare_s'][variant]:.1f} s + {first:.1f} s",
            ]
        )
    return rows


def render(results: dict) -> list[str]:
    """Section 1 of the report (nothing when it was not run)."""
    bb = results.get("backbone")
    if not bb:
        return []
    lines: list[str] = []
    c = bb["ceiling"]
    variant = bb.get("variant", "plain")
    lines += ["", f"## {NUMBER}. Backbone forward throughput", ""]
    m = results.get("machine", {})
    if m and results.get("other_cpu_s") is not None and results.get("benchmark_wall_s"):
        share = results["other_cpu_s"] / (results["benchmark_wall_s"] * m["cores"])
        lines += [
            f"Run {results.get('date', '')}, {commands(results.get('argv', ''))}, "
            f"on {m['cores']} cores ({m['cpu']}, {m['device']}); other processes used {share:.0%} of "
            "the machine meanwhile, so absolute figures are disturbed: read the ratios, each taken "
            "against the ceiling or plain seconds apart.",
            "",
        ]
    lines += table(
        ["quantity", "value"],
        [
            [
                f"InceptionResNetV2 (no top, avg pool), {bb['image_size']}², random tensors, batch {bb['batch']}, "
                f"as feature extraction runs it (`{variant}`)",
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
            [
                "ideal time per image (FLOPs / ceiling) / measured",
                f"{bb['flops_per_image'] / c['flops_per_s'] * 1e3:.0f} ms / "
                f"{bb['median_s'] / bb['batch'] * 1e3:.0f} ms",
            ],
        ],
    )
    lines += [
        "",
        "FLOPs: 2·out_h·out_w·k_h·k_w·C_in·C_out summed over every Conv2D of the built model "
        "(Dense: 2·C_in·C_out); batch normalisation, activations, pooling and the residual sums are not "
        "counted. Ceiling: achieved FLOP/s = 2·H·W·k·k·C_in·C_out·N / median time of one TensorFlow "
        "`conv2d` call (1 warm-up call excluded). A fraction of the ceiling is also the ideal time "
        "(FLOPs / ceiling) over the measured time.",
    ]
    if bb.get("variants"):
        var = bb["variants"]
        lines += ["", "### Ways to run the backbone, side by side", ""]
        lines += table(
            [
                "variant",
                "images/s",
                "% of ceiling = ideal / measured time (range)",
                "speed-up over plain, paired by round (range)",
                "max \\|Δ feature\\| / feature scale",
                "one-off: prepare + first call",
            ],
            _variant_rows(bb, results["config"]),
        )
        lines += [
            "",
            f"{len(var['rounds'])} rounds; each round times the ceiling's convolution, then every variant "
            "once in the order listed, then the ceiling again; a round's ceiling is the faster of its two "
            "calls, so each variant's share of the ceiling compares figures taken seconds apart, and its "
            "speed-up over plain is the median of per-round ratios. `plain`: the Keras model's "
            "`predict_on_batch` as built (a `tf.function`, no XLA on a CPU); `xla`: the same with "
            "`jit_compile=True`; `folded`: batch normalisation folded into the convolutions "
            "(`mcalc.learn.backbone`); `folded+bf16`: the folded model computing in bfloat16 (opt-in, "
            "never the book's default: not float32's features), its share taken of the same "
            "convolution timed in bfloat16 in the same rounds; feature difference on the same random "
            "batch against plain, over the largest feature; prepare = folding (a model clone) or "
            "cloning, first call = tracing (and XLA compilation).",
        ]
    return lines
