"""Provenance labels: which data and which backbone weights produced a result."""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mcalc import __version__
from mcalc.study import KAGGLE_JPEG

__all__ = [
    "KAGGLE_JPEG_LABEL",
    "REAL_TABLES",
    "REAL_TABLES_LABEL",
    "REAL_TABLES_RESULTS",
    "Provenance",
    "write_provenance",
    "read_provenance",
    "git_commit",
]

#: How results on the Kaggle JPEG re-release of CBIS-DDSM are labelled, wherever a label is shown.
KAGGLE_JPEG_LABEL = "CBIS-DDSM, Kaggle JPEG re-release: 8-bit, lossy"
#: Data kind of the metadata-only results: the official CBIS-DDSM calc tables shipped with mcalc.
REAL_TABLES = "cbis-ddsm-tables"
REAL_TABLES_LABEL = "real CBIS-DDSM case-description tables (metadata only)"
#: What the book computes from the shipped real tables in every build (named by the banner).
REAL_TABLES_RESULTS = (
    "Table 1's counts, patients / lesions / views per class and split, the BI-RADS assessment rule "
    "and the structural leakage counts of each split scheme"
)


@dataclass(frozen=True)
class Provenance:
    """Where a result came from: the data source and the backbone weights (the two things a reader must know)."""

    data: str  # "phantom", "cbis-ddsm" (a download) or REAL_TABLES (the shipped tables, metadata only)
    data_detail: str = ""  # e.g. "mcalc phantom 0.1.0, scale 1.0, seed 0" or the data root's name
    weights: str = "n/a"  # "imagenet", "random", "file:<name>", or "n/a" (no backbone involved)
    weights_detail: str = ""
    mcalc_version: str = __version__
    #: "" (the DICOM release, in either folder layout) or "kaggle-jpeg" (mcalc.study.KAGGLE_JPEG)
    release: str = ""
    python: str = field(default_factory=platform.python_version)
    #: the backbone's arithmetic: "float32" (the paper's) or "bfloat16" (the opt-in variant of
    #: mcalc.learn.backbone.REDUCED_PRECISION); records written before it existed read as float32
    backbone_precision: str = "float32"

    @property
    def is_reduced_precision(self) -> bool:
        """True when the backbone's features were computed in an arithmetic other than float32."""
        return self.weights != "n/a" and self.backbone_precision != "float32"

    def precision_sentence(self) -> str:
        """One sentence naming a reduced-precision backbone (empty for float32)."""
        if not self.is_reduced_precision:
            return ""
        return (
            f"The backbone computed in {self.backbone_precision} (chosen for this build), not "
            "float32 like the paper: its features differ from float32's beyond rounding."
        )

    @property
    def is_simulated(self) -> bool:
        """True when the data are the phantom or the backbone is not ImageNet-pretrained."""
        return self.data not in {"cbis-ddsm", REAL_TABLES} or self.weights in {"random"}

    @property
    def is_kaggle_jpeg(self) -> bool:
        """True when the images are (or imitate) the Kaggle JPEG re-release: 8-bit, lossy."""
        return self.release == KAGGLE_JPEG

    def label(self) -> str:
        """One line for figure captions and table footers."""
        source = KAGGLE_JPEG_LABEL if self.is_kaggle_jpeg else "CBIS-DDSM"
        if self.data == REAL_TABLES:
            data = REAL_TABLES_LABEL
        elif self.data == "phantom":
            data = f"PHANTOM data (simulated {source})"
        else:
            data = f"real {source}"
        if self.data_detail:
            data += f" [{self.data_detail}]"
        if self.weights == "n/a":
            return f"Data: {data}"
        weights = {
            "imagenet": "ImageNet-pretrained InceptionResNetV2",
            "random": "RANDOMLY initialised InceptionResNetV2 (ImageNet weights unavailable)",
        }.get(self.weights, f"InceptionResNetV2 weights from {self.weights}")
        if self.is_reduced_precision:
            weights += f", computed in {self.backbone_precision}"
        return f"Data: {data} · Backbone: {weights}"

    def banner(self) -> str:
        """Which results of the book are simulated (by their label) and which are real (empty when none is simulated)."""
        release = (
            f"Images: {KAGGLE_JPEG_LABEL}, not the DICOM release; GLCM texture results in "
            "particular may differ from the DICOM release's (see Methods)."
            if self.is_kaggle_jpeg
            else ""
        )
        if self.data == "phantom":
            simulated = (
                "Results labelled “PHANTOM data” (everything computed from images: "
                "features, networks, GLCM baselines, leakage metrics) were produced with the offline "
                "phantom, not real CBIS-DDSM images"
            )
            if self.weights == "random":
                simulated += ", and with a randomly initialised backbone, not ImageNet weights"
        elif self.weights == "random":
            simulated = (
                "Results labelled “RANDOMLY initialised InceptionResNetV2” were produced "
                "with a randomly initialised backbone, not ImageNet weights"
            )
        else:
            return " ".join(s for s in (release, self.precision_sentence()) if s)
        return (
            f"{simulated}: they test the pipeline, not the paper's numbers. Results labelled "
            f"“{REAL_TABLES_LABEL}” ({REAL_TABLES_RESULTS}) are real: computed in every build "
            "from the official tables shipped with mcalc."
            + "".join(f" {s}" for s in (release, self.precision_sentence()) if s)
        )

    def headline(self) -> str:
        """The banner's one line: what is simulated and what that means (empty when nothing is).

        A reduced-precision backbone is named in the same few words (the banner fits two lines on a
        phone): "a random bfloat16 backbone", "phantom images (backbone in bfloat16)", or a
        sentence of its own when nothing is simulated.
        """
        reduced = self.backbone_precision if self.is_reduced_precision else ""
        backbone = f"a random {reduced} backbone" if reduced else "a random backbone"
        simulated = [
            name
            for name, on in (
                ("phantom images", self.data == "phantom"),
                (backbone, self.weights == "random"),
            )
            if on
        ]
        jpeg = " Images: the Kaggle JPEG re-release (8-bit, lossy)." if self.is_kaggle_jpeg else ""
        if not simulated:
            own = f" Backbone in {reduced}, not float32 like the paper." if reduced else ""
            return (jpeg + own).strip()
        built = " and ".join(simulated)
        if reduced and self.weights != "random":
            built += f" (backbone in {reduced})"
        return (
            f"Built on {built}: results test the pipeline, not the paper; "
            "those from the real CBIS-DDSM tables are real." + jpeg
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


def write_provenance(prov: Provenance, path: Path) -> Path:
    """Write a provenance record as JSON (read by the book's banner)."""
    from mcalc.records.fsio import (
        write_text,  # a fresh temporary per writer: two writers never share one
    )

    return write_text(Path(path), json.dumps(prov.to_dict(), indent=2))


def read_provenance(path: Path) -> Provenance | None:
    """Read a provenance record written by :func:`write_provenance`, or None when absent."""
    path = Path(path)
    if not path.is_file():
        return None
    return Provenance.from_dict(json.loads(path.read_text()))


def git_commit(where: Path) -> str:
    """The short commit of the checkout holding ``where`` ("+ changes" when dirty), or "unknown"."""
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} + uncommitted changes" if dirty else head
