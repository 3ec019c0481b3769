"""Backbone weights: resolve a spec ("imagenet", "random", "auto" or a .h5 path) to the weights used.

ImageNet weights are Keras' InceptionResNetV2 "notop" file, taken from ``$KERAS_HOME/models`` or
downloaded when the network answers (probed first, with a timeout, so an offline machine fails fast).
"auto" falls back to a seeded random backbone and says so; the result is recorded in every provenance
label.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from mcalc.errors import WeightsUnavailable
from mcalc.records.cache import file_digest

#: Keras' ImageNet "notop" weights file for InceptionResNetV2, where Keras downloads it from, and its md5.
IMAGENET_NOTOP_FILE = "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_resnet_v2/"
    + IMAGENET_NOTOP_FILE
)
IMAGENET_NOTOP_MD5 = "d19885ff4a710c122648d3b5c3b684e4"


@dataclass
class WeightsInfo:
    """Which backbone weights were asked for and which are used (recorded in provenance labels)."""

    requested: str
    used: str  # "imagenet" | "random" | "file:<name>"
    path: str | None
    sha256: str | None
    note: str

    def identity(self, seed: int = 0) -> str:
        """Content identity of the weights for cache keys: the file's sha256, or ``random:<seed>``."""
        if self.used == "random":
            return f"random:{int(seed)}"
        if not self.sha256:
            raise ValueError(
                f"weights {self.used!r} have no sha256; resolve them with resolve_weights()"
            )
        return f"sha256:{self.sha256}"


def _sha256(path: Path) -> str:
    """sha256 hex digest of a file."""
    return file_digest(path)


def _md5(path: Path) -> str:
    """md5 hex digest of a file (Keras publishes md5 hashes for its weight files)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def keras_home_dir(keras_home: str | os.PathLike | None = None) -> Path:
    """Keras' cache folder: the argument, else $KERAS_HOME, else ~/.keras (read now, not at import)."""
    return Path(keras_home or os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def _probe(url: str, timeout_s: float) -> str | None:
    """None when the URL's host accepts a TCP connection within ``timeout_s``, else why not."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    outcome: dict[str, str] = {}

    def connect() -> None:
        """Open and close one TCP connection, recording the error if any."""
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=connect, name="mcalc-weights-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return f"no answer from {host} within {timeout_s:g} s"
    return outcome.get("error")


def _download_imagenet(home: Path, timeout_s: float) -> tuple[Path | None, str]:
    """Try Keras' download of the notop file into ``home/models``; (path, "") or (None, reason)."""
    import keras

    reason = _probe(IMAGENET_NOTOP_URL, timeout_s)
    if reason:
        return None, reason
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        got = keras.utils.get_file(
            IMAGENET_NOTOP_FILE,
            IMAGENET_NOTOP_URL,
            cache_subdir="models",
            file_hash=IMAGENET_NOTOP_MD5,
            cache_dir=str(home),
        )
    except Exception as exc:  # network errors, hash mismatch, unwritable folder
        return None, f"download failed ({type(exc).__name__}: {exc})"
    finally:
        socket.setdefaulttimeout(previous)
    return Path(got), ""


def _resolve_imagenet(requested: str, home: Path, timeout_s: float) -> WeightsInfo:
    """The ImageNet notop weights from ``home/models`` or Keras' download, else WeightsUnavailable."""
    target = home / "models" / IMAGENET_NOTOP_FILE
    if target.is_file():
        if _md5(target) != IMAGENET_NOTOP_MD5:
            raise WeightsUnavailable(
                f"The InceptionResNetV2 ImageNet weights file {target} is incomplete or damaged (its md5 is "
                f"not Keras' {IMAGENET_NOTOP_MD5}). Delete it and put a good copy of {IMAGENET_NOTOP_FILE} "
                f'(from {IMAGENET_NOTOP_URL}) there, or run with weights="random" or weights="auto".'
            ) from None
        path, origin = target, f"found in {target.parent}"
    else:
        path, reason = _download_imagenet(home, timeout_s)
        if path is None:
            raise WeightsUnavailable(
                f"The InceptionResNetV2 ImageNet weights are not available: {IMAGENET_NOTOP_FILE} is not in "
                f"{target.parent} and downloading it from {IMAGENET_NOTOP_URL} failed ({reason}). To use the "
                f"paper's ImageNet weights, fetch that file on a machine with internet access and put it at "
                f"{target} (the folder is $KERAS_HOME/models, with KERAS_HOME defaulting to ~/.keras), or pass "
                f'the file\'s path as the weights. To run without it, use weights="random" (a seeded random '
                f'backbone) or weights="auto" (ImageNet when available, otherwise random, and the results '
                f"say so)."
            ) from None
        origin = f"downloaded from {IMAGENET_NOTOP_URL}"
    return WeightsInfo(
        requested=requested,
        used="imagenet",
        path=str(path),
        sha256=_sha256(path),
        note=f"ImageNet weights ({IMAGENET_NOTOP_FILE}, {origin})",
    )


def resolve_weights(
    spec: str = "auto", keras_home: str | os.PathLike | None = None, download_timeout_s: float = 10
) -> WeightsInfo:
    """Resolve a weights spec ("imagenet", "random", "auto" or a path to a .h5 file) to a WeightsInfo."""
    text = str(spec)
    home = keras_home_dir(keras_home)
    low = text.strip().lower()
    if low == "random":
        return WeightsInfo(
            "random", "random", None, None, "random initialisation (seeded); not ImageNet weights"
        )
    if low == "imagenet":
        return _resolve_imagenet("imagenet", home, download_timeout_s)
    if low == "auto":
        try:
            return _resolve_imagenet("auto", home, download_timeout_s)
        except WeightsUnavailable as exc:
            return WeightsInfo(
                "auto", "random", None, None, f"seeded random initialisation, not ImageNet. {exc}"
            )
    if low.endswith((".h5", ".hdf5")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(
                f"Backbone weights file {path} does not exist. Give the path of an existing .h5 or .weights.h5 "
                f"file of an InceptionResNetV2 without top (e.g. Keras' {IMAGENET_NOTOP_FILE}), or use "
                f'weights="imagenet", "random" or "auto".'
            ) from None
        return WeightsInfo(
            text, f"file:{path.name}", str(path), _sha256(path), f"weights loaded from {path}"
        )
    raise ValueError(
        f'unknown weights spec {text!r}: use "imagenet", "random", "auto" or a path to a .h5 / .weights.h5 file'
    )
