"""Provenance labels: which data and which backbone weights produced a result."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mcalc import __version__

#: How results on the Kaggle JPEG re-release of CBIS-DDSM are labelled, wherever a label is shown.
KAGGLE_JPEG_LABEL = "CBIS-DDSM, Kaggle JPEG re-release: 8-bit, lossy"


@dataclass(frozen=True)
class Provenance:
    """Where a result came from: the data source and the backbone weights (the two things a reader must know)."""

    data: str  # "phantom" or "cbis-ddsm"
    data_detail: str = ""  # e.g. "mcalc phantom 0.1.0, scale 1.0, seed 0" or the data root's name
    weights: str = "n/a"  # "imagenet", "random", "file:<name>", or "n/a" (no backbone involved)
    weights_detail: str = ""
    mcalc_version: str = __version__
    release: str = (
        ""  # "" (the DICOM release, or its layouts) or "kaggle-jpeg" (mcalc.kaggle.LAYOUT)
    )
    python: str = field(default_factory=platform.python_version)

    @property
    def is_simulated(self) -> bool:
        """True when the data are the phantom or the backbone is not ImageNet-pretrained."""
        return self.data != "cbis-ddsm" or self.weights in {"random"}

    @property
    def is_kaggle_jpeg(self) -> bool:
        """True when the images are (or imitate) the Kaggle JPEG re-release: 8-bit, lossy."""
        from mcalc.kaggle import LAYOUT

        return self.release == LAYOUT

    def label(self) -> str:
        """One line for figure captions and table footers."""
        source = KAGGLE_JPEG_LABEL if self.is_kaggle_jpeg else "CBIS-DDSM"
        data = f"PHANTOM data (simulated {source})" if self.data == "phantom" else f"real {source}"
        if self.data_detail:
            data += f" [{self.data_detail}]"
        if self.weights == "n/a":
            return f"Data: {data}"
        weights = {
            "imagenet": "ImageNet-pretrained InceptionResNetV2",
            "random": "RANDOMLY initialised InceptionResNetV2 (ImageNet weights unavailable)",
        }.get(self.weights, f"InceptionResNetV2 weights from {self.weights}")
        return f"Data: {data} · Backbone: {weights}"

    def banner(self) -> str:
        """A warning sentence for pages whose results are not the paper's setting (empty when they are)."""
        parts = []
        if self.data == "phantom":
            parts.append("the offline phantom, not real CBIS-DDSM images")
        if self.weights == "random":
            parts.append("a randomly initialised backbone, not ImageNet weights")
        release = (
            f"Images: {KAGGLE_JPEG_LABEL}, not the DICOM release; GLCM texture results in "
            "particular may differ from the DICOM release's (see Methods)."
            if self.is_kaggle_jpeg
            else ""
        )
        if not parts:
            return release
        return (
            "The results on this page were produced with "
            + " and ".join(parts)
            + ": they test the pipeline, not the paper's numbers."
            + (f" {release}" if release else "")
        )

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Provenance:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        keys = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in keys})

    def with_weights(self, weights: str, detail: str = "") -> Provenance:
        """A copy naming the backbone weights used."""
        d = self.to_dict()
        d.update(weights=weights, weights_detail=detail)
        return Provenance.from_dict(d)


def data_provenance(root: Path) -> Provenance:
    """Provenance of a data root: a phantom when it carries mcalc's ``phantom.json``, real CBIS-DDSM otherwise."""
    from mcalc.kaggle import LAYOUT, layout_of

    marker = Path(root) / "phantom.json"
    if marker.is_file():
        meta = json.loads(marker.read_text())
        cfg = meta.get("config", {})
        detail = f"mcalc phantom {meta.get('version', '?')}, scale {cfg.get('scale', '?')}, seed {cfg.get('seed', '?')}"
        release = LAYOUT if cfg.get("layout") == LAYOUT else ""
        return Provenance(data="phantom", data_detail=detail, release=release)
    release = LAYOUT if layout_of(root) == LAYOUT else ""
    return Provenance(data="cbis-ddsm", data_detail=Path(root).name, release=release)


def write_provenance(prov: Provenance, path: Path) -> Path:
    """Write a provenance record as JSON (read by the book's banner)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(prov.to_dict(), indent=2))
    tmp.replace(path)
    return path


def read_provenance(path: Path) -> Provenance | None:
    """Read a provenance record written by :func:`write_provenance`, or None when absent."""
    path = Path(path)
    if not path.is_file():
        return None
    return Provenance.from_dict(json.loads(path.read_text()))
