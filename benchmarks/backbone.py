"""Section 1: InceptionResNetV2 forward throughput on random tensors, and its fraction of the
machine's dense-convolution ceiling (one large Conv2D timed in TensorFlow)."""

from __future__ import annotations

import numpy as np

from benchmarks.config import BenchConfig
from benchmarks.markdown import table
from benchmarks.measure import median_time

NUMBER = 1


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


def conv_ceiling(cfg: BenchConfig) -> dict:
    """Achieved FLOP/s of one large dense Conv2D (``conv_kernel``², C→C channels, ``conv_hw``², ``conv_batch``)."""
    import tensorflow as tf

    k, c, hw, n = cfg.conv_kernel, cfg.conv_channels, cfg.conv_hw, cfg.conv_batch
    rng = np.random.default_rng(cfg.seed)
    x = tf.constant(rng.standard_normal((n, hw, hw, c), dtype=np.float32))
    w = tf.constant((rng.standard_normal((k, k, c, c)) / np.sqrt(k * k * c)).astype(np.float32))
    conv = tf.function(lambda: tf.reduce_sum(tf.nn.conv2d(x, w, strides=1, padding="SAME")))
    median, times = median_time(lambda: conv().numpy(), cfg.repeats)
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


def render(results: dict) -> list[str]:
    """Section 1 of the report (nothing when it was not run)."""
    bb = results.get("backbone")
    if not bb:
        return []
    lines: list[str] = []
    c = bb["ceiling"]
    lines += ["", f"## {NUMBER}. Backbone forward throughput", ""]
    lines += table(
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
    return lines
