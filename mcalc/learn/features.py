"""Backbone features (chapter 2): every usable ROI through the frozen InceptionResNetV2 once, cached by content.

Because the backbone is frozen and runs in inference mode, training the head on these 1536-d
average-pooled features is the same computation as training the end-to-end model on images
(``tests/test_model.py`` checks this), so every later chapter reads them instead of the images.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mcalc.errors import DataError, ExclusionWarning
from mcalc.learn.backbone import (
    DEFAULT_VARIANT,
    VARIANTS,
    backbone_variant,
    inference_model,
    precision,
)
from mcalc.learn.model import N_FEATURES, build_backbone, compute_device, float32_everywhere
from mcalc.learn.preprocessing import PreprocessConfig, load_roi
from mcalc.learn.weights import WeightsInfo
from mcalc.paper import BATCH_SIZE
from mcalc.records.cache import FeatureCache, cache_key, file_digest, load_or_compute
from mcalc.records.fsio import atomic_write
from mcalc.records.provenance import Provenance, write_provenance
from mcalc.records.results import FEATURES, FEATURES_META, PROVENANCE, write_json

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

#: Version of the feature recipe; bump it when extraction changes so cached features are rebuilt.
FEATURES_VERSION = 1


def _load_or_reason(path: str, preprocess: PreprocessConfig) -> np.ndarray | str:
    """A preprocessed ROI, or the message saying why it cannot be used (naming the file)."""
    try:
        return load_roi(path, preprocess)
    except DataError as exc:
        return str(exc)


def _stack_usable(loaded: list[np.ndarray | str], size: int) -> tuple[np.ndarray, list[int]]:
    """A batch of images (zeros in place of the unusable ones) and the positions of the unusable ones."""
    bad = [j for j, item in enumerate(loaded) if isinstance(item, str)]
    blank = np.zeros((size, size, 3), np.float32)
    return np.stack([blank if j in bad else item for j, item in enumerate(loaded)]), bad


def _report_left_out(features: np.ndarray, paths: list[str], problems: dict[int, str]) -> None:
    """One warning naming every ROI left out of the features (its row NaN) with the reason."""
    bad = [int(i) for i in np.flatnonzero(~np.isfinite(features).all(axis=1))]
    if not bad:
        return
    reasons = [problems.get(i, f"{paths[i]}: features not finite") for i in bad]
    if len(bad) == len(paths):
        raise DataError(f"no ROI image could be used: {'; '.join(reasons[:3])}")
    more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
    warnings.warn(
        f"{len(bad)} of {len(paths)} ROI(s) left out of the features (their rows are NaN): "
        f"{'; '.join(reasons[:10])}{more}",
        ExclusionWarning,
        stacklevel=3,
    )


def _prefetched_batches(
    paths: Sequence[str],
    batches: Sequence[Sequence[int]],
    preprocess: PreprocessConfig,
    workers: int,
    prefetch: int = 2,
) -> Iterator[tuple[list[int], list[np.ndarray | str]]]:
    """Load and preprocess batches of ROIs on a thread pool, ``prefetch`` batches ahead (a message for an unusable one)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mcalc-roi")
    pending: deque[tuple[list[int], list[Future]]] = deque()
    try:
        queue = iter(batches)
        for batch in queue:
            pending.append(
                (list(batch), [pool.submit(_load_or_reason, paths[i], preprocess) for i in batch])
            )
            if len(pending) > prefetch:
                break
        while pending:
            indices, futures = pending.popleft()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(
                    (list(nxt), [pool.submit(_load_or_reason, paths[i], preprocess) for i in nxt])
                )
            yield indices, [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def extract_features(
    paths: list[str],
    preprocess: PreprocessConfig,
    weights: WeightsInfo,
    cache_dir: Path,
    batch_size: int = BATCH_SIZE,
    progress: bool = True,
    seed: int = 0,
    backbone: keras.Model | None = None,
    workers: int | None = None,
    variant: str = "plain",
) -> np.ndarray:
    """Backbone features (N, 1536) of the ROI DICOMs at ``paths``, cached per image by content.

    The cache key of a row is the image file's sha256, ``preprocess.key()``, the weights' identity
    (file sha256 or ``random:<seed>``) and the Keras / TensorFlow versions. Rows already cached are
    loaded; the rest are decoded on a thread pool (prefetching ahead of the backbone) and written as
    each batch finishes. ``backbone`` may be passed to reuse a model built by :func:`build_backbone`
    with the same ``weights``, ``seed`` and ``preprocess.image_size``; otherwise one is built only when
    some row is missing. A ROI whose file cannot be read or preprocessed never aborts the run: its row
    is NaN (never cached) and one :class:`~mcalc.errors.ExclusionWarning` names it with the reason;
    DataError only when no ROI at all can be used.

    ``variant`` (:data:`mcalc.learn.backbone.VARIANTS`) is how the backbone runs: ``"plain"`` (the
    default here) is the Keras model as given or built; ``"folded"`` (what :func:`compute_features`,
    the book's path, runs) folds batch normalisation into the convolutions, the same features up to
    float32 rounding (:mod:`mcalc.learn.backbone`) and faster. A ``backbone`` already made by
    :func:`~mcalc.learn.backbone.inference_model` runs as its own variant. Every variant but
    plain adds its name to the cache key, so rows of different arithmetic never mix in one result
    (plain keys are those of earlier versions).
    """
    import keras
    import tensorflow as tf
    from tqdm.auto import tqdm

    if variant not in VARIANTS:
        raise ValueError(f"unknown backbone variant {variant!r}; valid: {', '.join(VARIANTS)}")
    paths = [str(p) for p in paths]
    memo: dict = {}
    digests = []
    problems: dict[int, str] = {}  # row -> why its ROI is left out (the row comes back NaN)
    for i, p in enumerate(paths):
        try:
            digests.append(file_digest(p, memo))
        except OSError as exc:
            digests.append(f"unreadable:{p}")  # a key never cached: the row is NaN
            problems[i] = f"{p}: ROI image file cannot be read ({exc.strerror or exc})"
    if paths and len(problems) == len(paths):
        raise DataError(f"no ROI image could be read: {'; '.join(list(problems.values())[:3])}")
    identity = weights.identity(seed)
    versions = f"keras={keras.__version__};tf={tf.__version__}"
    if backbone is not None and backbone_variant(backbone) is not None:
        variant = backbone_variant(backbone)
    how = () if variant == "plain" else (f"backbone={variant}",)
    keys = [
        cache_key(f"features-v{FEATURES_VERSION}", d, preprocess.key(), identity, versions, *how)
        for d in digests
    ]
    meta = {
        "preprocess": preprocess.key(),
        "weights": identity,
        "weights_used": weights.used,
        "versions": versions,
        "backbone": variant,
    }
    workers = int(workers or min(8, os.cpu_count() or 1))

    def compute(missing: list[int]) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield (indices, features) batch by batch for the rows missing from the cache."""
        float32_everywhere()  # a float32 variant's features are float32's on a GPU too
        model = (
            backbone
            if backbone is not None
            else build_backbone(preprocess.image_size, weights, seed)
        )
        if tuple(model.input_shape[1:3]) != (preprocess.image_size, preprocess.image_size):
            raise ValueError(
                f"backbone input {model.input_shape} does not match image_size {preprocess.image_size}"
            )
        model = inference_model(model, variant)
        log.info(
            "extracting features of %d images on %s (backbone: %s)",
            len(missing),
            compute_device(),
            variant,
        )
        batches = [missing[i : i + batch_size] for i in range(0, len(missing), batch_size)]
        bar = tqdm(total=len(missing), desc="features", unit="img", disable=not progress)
        try:
            for indices, loaded in _prefetched_batches(paths, batches, preprocess, workers):
                images, bad = _stack_usable(loaded, preprocess.image_size)
                problems.update({indices[j]: loaded[j] for j in bad})
                n = len(indices)
                if n < batch_size:  # pad so every batch has one shape (one traced function)
                    images = np.concatenate(
                        [images, np.zeros((batch_size - n, *images.shape[1:]), images.dtype)]
                    )
                feats = np.array(model.predict_on_batch(images))[:n]
                feats[bad] = np.nan  # left out, reported below, never cached
                bar.update(n)
                yield indices, feats
        finally:
            bar.close()

    result = load_or_compute(
        keys, compute, FeatureCache(Path(cache_dir)), row_shape=(N_FEATURES,), meta=meta
    )
    log.info("features: %d rows from cache, %d computed", result.n_cached, len(result.computed))
    _report_left_out(result.array, paths, problems)
    return result.array


def _versions() -> dict[str, str]:
    """What made the features: mcalc, its commit, Python, TensorFlow, Keras, the device (``mcalc compare`` reads them)."""
    import platform

    import keras
    import tensorflow as tf

    from mcalc import __version__
    from mcalc.records.provenance import git_commit

    return {
        "mcalc": __version__,
        "commit": git_commit(Path(__file__).resolve().parent),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "device": compute_device(),
    }


def compute_features(
    manifest: pd.DataFrame,
    image_size: int,
    weights_info: WeightsInfo,
    cache_dir: str | Path,
    results_dir: str | Path,
    provenance: Provenance,
    progress: bool = True,
    antialias: bool = True,
    variant: str = DEFAULT_VARIANT,
) -> np.ndarray:
    """Backbone features of every usable ROI (through the content-keyed cache), saved to the results folder.

    ``antialias=False`` resizes with the point-sampled cubic (like OpenCV's INTER_CUBIC) instead of
    the default antialiased bicubic (see :mod:`mcalc.learn.preprocessing`). ``variant``: how the
    backbone runs, batch norm folded by default (see :func:`extract_features`; ``"plain"`` for the
    Keras model as built).
    """
    config = PreprocessConfig(image_size=image_size, antialias=antialias)
    # every later result's label names the backbone's arithmetic
    provenance = replace(provenance, backbone_precision=precision(variant))
    start = time.perf_counter()
    X = extract_features(
        list(manifest["crop_path"]),
        config,
        weights_info,
        Path(cache_dir),
        progress=progress,
        variant=variant,
    )
    elapsed = time.perf_counter() - start
    results = Path(results_dir)
    results.mkdir(parents=True, exist_ok=True)
    ids = manifest["roi_id"].to_numpy(dtype=str)
    atomic_write(results / FEATURES, lambda fh: np.savez(fh, X=X, roi_id=ids), binary=True)
    write_json(
        {
            "image_size": image_size,
            "antialias": bool(antialias),
            "backbone": variant,
            "backbone_precision": precision(variant),
            "weights": asdict(weights_info),
            "n": int(len(X)),
            "left_out": [str(r) for r in ids[~np.isfinite(X).all(axis=1)]],
            "elapsed_s": round(elapsed, 2),
            "versions": _versions(),
        },
        results / FEATURES_META,
    )
    write_provenance(provenance, results / PROVENANCE)
    return X
