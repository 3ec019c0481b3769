"""Section 4: head training on cached features against a naive frozen-backbone ``model.fit`` on
images, four optimizers, with a check that both give the same head weights (the naive path is
measured on a subset and extrapolated)."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.config import BenchConfig
from benchmarks.markdown import fmt_s, table
from benchmarks.measure import epoch_timer
from mcalc.paper import VALIDATION_SIZE

NUMBER = 4


def full_sizes(cfg: BenchConfig) -> dict:
    """Sizes of the default run: all usable ROIs, the training ROIs and the validation ROIs of the train split."""
    from mcalc.data.phantom import PhantomConfig, plan_phantom

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
    n_val = VALIDATION_SIZE if n_train_split >= 1000 else max(1, round(0.2 * n_train_split))
    return {
        "n_all": n_all,
        "n_train": n_train_split - n_val,
        "n_val": n_val,
        "source": source,
        "features": features,
    }


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
    """Section 4: cached-feature head training vs a naive frozen-backbone fit on images (4 optimizers)."""
    import tensorflow as tf

    from mcalc.learn import model as M
    from mcalc.paper import OPTIMIZERS

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
        for opt in OPTIMIZERS:
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
            start = time.perf_counter()
            naive = M.fit_epochs(
                model,
                images[tr],
                labels[tr],
                images[va],
                labels[va],
                sub_cfg,
                callbacks=[epoch_timer(epoch_times)],
            )
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
        for opt in OPTIMIZERS:
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


def render(results: dict) -> list[str]:
    """Section 4 of the report (nothing when it was not run)."""
    tr = results.get("training")
    if not tr:
        return []
    lines: list[str] = []
    s, f = tr["subset"], tr["full"]
    lines += [
        "",
        f"## {NUMBER}. Cached-feature head training vs naive frozen-backbone `model.fit` "
        f"(4 optimizers × {f['epochs']} epochs)",
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
                fmt_s(r["naive_extrapolated_s"]),
            ]
        )
    lines += table(
        [
            "optimizer",
            "lr (check)",
            "naive, measured",
            "per epoch",
            "max weight change",
            "max \\|cached − naive\\|",  # pipes escaped: a bare one would end the cell
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
    lines += table(
        ["path", "wall", "how"],
        [
            ["naive, 4 optimizers, measured on the subset", fmt_s(s["naive_wall_s"]), "measured"],
            [
                f"naive, 4 optimizers × {f['epochs']} epochs, full size",
                fmt_s(tr["naive_extrapolated_s"]),
                "**extrapolated**",
            ],
            [
                f"cached: one feature extraction of {f['n_all']} ROIs",
                fmt_s(f["extraction_s"]),
                f"{f['n_all']} / {f['extraction_images_per_s']:.2f} images/s ({f['extraction_source']})",
            ],
            [
                f"cached: head training, 4 optimizers × {f['epochs']} epochs "
                f"({f['n_train']} train + {f['n_val']} validation)",
                fmt_s(f["head_training_s"]),
                f"measured on {f['features']}: "
                + ", ".join(f"{r['optimizer']} {r['wall_s']:.1f} s" for r in f["rows"]),
            ],
            ["cached, total", fmt_s(f["cached_total_s"]), ""],
            ["**naive / cached**", f"**{tr['speedup']:.0f}×**", ""],
        ],
    )
    lines += [
        "",
        f"Full size: {f['source']}; validation = 200 ROIs of the train split, as in the default profile "
        "(20 % below 1000 training ROIs).",
    ]
    return lines
