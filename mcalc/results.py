"""The results folder: its layout, the run records the notebooks write, and reading them back.

Layout (``results_dir``): ``manifest.csv`` (+ ``.exclusions.csv``, ``.swaps.csv``) from curation;
``provenance.json`` (data, then backbone weights); ``features.npz`` + ``features.json`` (the backbone
features of the usable ROIs); ``runs/*.json``, one record per trained or fitted model
(:class:`OptimizerRun`, :class:`BaselineRun`), gathered by :func:`gather_results`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc import paper
from mcalc.curation import DEFAULT_TASK, Task, apply_task, get_task, read_manifest
from mcalc.errors import DataError, ExclusionWarning
from mcalc.fsio import write_text
from mcalc.metrics import Evaluation
from mcalc.plan import plan_hash
from mcalc.provenance import Provenance, read_provenance

MANIFEST = "manifest.csv"
PROVENANCE = "provenance.json"
FEATURES = "features.npz"
FEATURES_META = "features.json"
RUNS = "runs"


#: The notebook that writes each file of the results folder: a damaged file means "re-run it".
WRITERS = {
    MANIFEST: "01_data_curation",
    PROVENANCE: "01_data_curation",
    FEATURES: "02_preprocessing",
    FEATURES_META: "02_preprocessing",
    "cnn": "03_optimizer",
    "baseline": "04_glcm_baselines",
}


def damaged(path: Path, why: object, writer: str) -> DataError:
    """The one-line error for a results file that cannot be read back: the file, why, and the fix."""
    why = " ".join(str(why).split()) or "unreadable"
    return DataError(
        f"{path} is damaged ({why[:200]}): re-run notebook {writer}, which writes it "
        f"(mcalc notebooks --only {writer} --force)"
    )


def _read_json(path: Path, writer: str) -> dict:
    """A JSON object written by mcalc, or the one-line 'damaged: re-run the writer' error."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise damaged(path, exc, writer) from None
    if not isinstance(data, dict):
        raise damaged(path, "not a JSON object", writer)
    return data


def write_json(obj: dict, path: Path) -> Path:
    """Write JSON atomically (mcalc.fsio: whole or not at all, umask permissions)."""
    text = json.dumps(obj, indent=1, allow_nan=False)  # fails before anything is written
    return write_text(path, text)


def read_results_provenance(results_dir: str | Path) -> Provenance:
    """The provenance recorded in the results folder (data, and weights once features exist)."""
    try:
        prov = read_provenance(Path(results_dir) / PROVENANCE)
    except (ValueError, KeyError, TypeError) as exc:
        raise damaged(Path(results_dir) / PROVENANCE, exc, WRITERS[PROVENANCE]) from None
    if prov is None:
        raise DataError(f"no {PROVENANCE} in {results_dir}: run notebook 01 (data curation) first")
    return prov


def load_manifest(results_dir: str | Path) -> pd.DataFrame:
    """The usable (status ok) ROIs of the curated manifest, in manifest order."""
    path = Path(results_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"no manifest at {path}: run notebook 01 (data curation) first")
    try:
        manifest = read_manifest(path)
    except DataError as exc:
        raise damaged(path, exc, WRITERS[MANIFEST]) from None
    return manifest[manifest["status"] == "ok"].reset_index(drop=True)


def task_rows(manifest: pd.DataFrame, task: str | Task = DEFAULT_TASK) -> np.ndarray:
    """Which usable ROIs a task keeps (a boolean mask); warns how many it leaves out, and why."""
    task = get_task(task)
    kept = (apply_task(manifest, task)["status"] == "ok").to_numpy()
    if not kept.all():
        warnings.warn(
            f"{int((~kept).sum())} ROI(s) left out by task {task.name}: {task.reason} "
            "(notebook 01 run under this task records them in the exclusion report)",
            ExclusionWarning,
            stacklevel=3,
        )
    return kept


def usable_under_task(manifest: pd.DataFrame, task: str | Task = DEFAULT_TASK) -> pd.DataFrame:
    """The usable ROIs under a task: labels from its classes, the ROIs it leaves out left out (with a warning)."""
    kept = task_rows(manifest, task)
    return apply_task(manifest, task)[kept].reset_index(drop=True)


def load_features(results_dir: str | Path, manifest: pd.DataFrame) -> tuple[np.ndarray, dict]:
    """The saved backbone features, checked row by row against the manifest's ROI ids."""
    results = Path(results_dir)
    if not (results / FEATURES).is_file():
        raise DataError(f"no {FEATURES} in {results}: run notebook 02 (preprocessing) first")
    try:
        with np.load(results / FEATURES, allow_pickle=False) as z:
            X, ids = z["X"], z["roi_id"]
    except Exception as exc:  # noqa: BLE001 - a cut or edited archive fails in many ways
        raise damaged(
            results / FEATURES, f"{type(exc).__name__}: {exc}", WRITERS[FEATURES]
        ) from None
    if list(ids) != list(manifest["roi_id"]) or X.ndim != 2 or len(X) != len(ids):
        raise DataError(f"{results / FEATURES} does not match the manifest (re-run notebook 02)")
    meta = _read_json(results / FEATURES_META, WRITERS[FEATURES_META])
    if not {"image_size", "weights"} <= set(meta):
        raise damaged(
            results / FEATURES_META, "image_size or weights missing", WRITERS[FEATURES_META]
        )
    return X, meta


def load_study_inputs(
    results_dir: str | Path, image_size: int, weights: str, task: str | Task = DEFAULT_TASK
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The usable manifest under a task (its labels; ROIs it leaves out reported and left out), its
    backbone features (checked against the asked image size and weights) and labels."""
    task = get_task(task)
    manifest = load_manifest(results_dir)
    X, meta = load_features(results_dir, manifest)
    kept = task_rows(manifest, task)
    manifest, X = manifest[kept].reset_index(drop=True), X[kept]
    manifest = usable_under_task(manifest, task)
    if meta["image_size"] != image_size or meta["weights"]["requested"] != weights:
        raise DataError(
            f"the saved features were made at {meta['image_size']} px with weights "
            f"{meta['weights']['requested']!r}, not {image_size} px / {weights!r}: re-run notebook 02 with these"
        )
    usable = np.isfinite(X).all(axis=1)
    if not usable.all():
        left_out = manifest.loc[~usable, "roi_id"].tolist()
        warnings.warn(
            f"{len(left_out)} ROI(s) left out: their images could not be read at feature extraction "
            f"({', '.join(left_out[:10])}{' ...' if len(left_out) > 10 else ''})",
            ExclusionWarning,
            stacklevel=2,
        )
        manifest, X = manifest[usable].reset_index(drop=True), X[usable]
    return manifest, X, manifest["label"].to_numpy(dtype=int)


@dataclass
class OptimizerRun:
    """One trained head: its configuration, per-epoch history, validation and test evaluations, provenance."""

    optimizer: str
    config: dict
    history: pd.DataFrame
    validation: Evaluation
    test: Evaluation
    provenance: Provenance
    split_sizes: dict
    elapsed_s: float
    path: Path = Path(".")
    #: the head evaluated on its own training ROIs after training (Table 3's training accuracy)
    train: Evaluation | None = None
    #: the content hash of the analysis plan (mcalc.plan) in force when the run was recorded
    analysis_plan: str | None = None

    @property
    def paper_name(self) -> str:
        """The optimizer's name as the paper spells it."""
        return paper.PAPER_OPTIMIZER_NAMES.get(self.optimizer, self.optimizer)

    @property
    def figure_label(self) -> str:
        """The paper's figure for this optimizer ('Figure 4' … 'Figure 7')."""
        return paper.FIGURE_OF_OPTIMIZER.get(self.optimizer, "Figure")

    @property
    def at_paper_setting(self) -> bool:
        """Trained at the paper's learning rate (a sensitivity analysis, or a re-run at another rate, is not)."""
        return bool(
            np.isclose(self.config.get("learning_rate", paper.LEARNING_RATE), paper.LEARNING_RATE)
        )

    def item_lead(self, item: str) -> str:
        """A caption's lead: 'Table 3 —' at the paper's setting; else one saying the item is laid out as
        the paper's but is not it (the book then numbers it as the study's own)."""
        if self.at_paper_setting:
            return f"{item} —"
        return f"At lr {self.config['learning_rate']:g}, not the paper's {paper.LEARNING_RATE:g} (laid out as its {item}):"

    def describe(self) -> str:
        """One line: the split sizes and the settings."""
        c = self.config
        return (
            f"{self.paper_name}: lr {c['learning_rate']:g}, batch {c['batch_size']}, {c['epochs']} epochs, "
            f"seed {c['seed']}; train {self.split_sizes['train']} / validation {self.split_sizes['validation']} "
            f"/ test {self.split_sizes['test']} ROIs; head trained in {self.elapsed_s:.1f} s"
        )

    def to_dict(self) -> dict:
        """JSON-serialisable record (what notebook 05 reads back)."""
        return {
            "kind": "cnn",
            "name": self.optimizer,
            "config": self.config,
            "history": self.history.to_dict(orient="list"),
            "validation": self.validation.to_dict(),
            "test": self.test.to_dict(),
            "train": None if self.train is None else self.train.to_dict(),
            "provenance": self.provenance.to_dict(),
            "split_sizes": self.split_sizes,
            "elapsed_s": self.elapsed_s,
            "analysis_plan": self.analysis_plan or plan_hash(),
        }

    @classmethod
    def from_dict(cls, d: dict, path: Path = Path(".")) -> OptimizerRun:
        """Inverse of :meth:`to_dict`."""
        return cls(
            optimizer=d["name"],
            config=d["config"],
            history=pd.DataFrame(d["history"]),
            validation=Evaluation.from_dict(d["validation"]),
            test=Evaluation.from_dict(d["test"]),
            provenance=Provenance.from_dict(d["provenance"]),
            split_sizes=d["split_sizes"],
            elapsed_s=d["elapsed_s"],
            path=path,
            train=None if d.get("train") is None else Evaluation.from_dict(d["train"]),
            analysis_plan=d.get("analysis_plan"),
        )


@dataclass
class BaselineRun:
    """One classical or reference model: evaluations by protocol ('cv' on train, 'test' on the test split)."""

    name: str
    label: str
    evaluations: dict[str, Evaluation]
    provenance: Provenance
    config: dict = field(default_factory=dict)
    #: the content hash of the analysis plan (mcalc.plan) in force when the run was recorded
    analysis_plan: str | None = None

    def to_dict(self) -> dict:
        """JSON-serialisable record."""
        return {
            "kind": "baseline",
            "analysis_plan": self.analysis_plan or plan_hash(),
            "name": self.name,
            "label": self.label,
            "config": self.config,
            "evaluations": {k: v.to_dict() for k, v in self.evaluations.items()},
            "provenance": self.provenance.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> BaselineRun:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=d["name"],
            label=d["label"],
            config=d.get("config", {}),
            evaluations={k: Evaluation.from_dict(v) for k, v in d["evaluations"].items()},
            provenance=Provenance.from_dict(d["provenance"]),
            analysis_plan=d.get("analysis_plan"),
        )


@dataclass
class Results:
    """Every saved run of one results folder, and the book's comparison tables built from them."""

    cnn: dict[str, OptimizerRun]
    baselines: dict[str, BaselineRun]
    provenance: Provenance
    finetuned: dict[str, OptimizerRun] = field(default_factory=dict)

    def run_names(self) -> list[str]:
        """Names of the runs found (CNN optimizers, then baselines)."""
        return (
            [f"cnn_{k}" for k in self.cnn]
            + [f"cnn_{k}" for k in self.finetuned]
            + [f"baseline_{k}" for k in self.baselines]
        )

    def best_cnn(self) -> OptimizerRun | None:
        """The optimizer run with the highest validation accuracy (the paper's selection criterion)."""
        if not self.cnn:
            return None
        return max(self.cnn.values(), key=lambda r: (r.validation.accuracy, r.validation.auc_macro))

    def test_evaluations(self) -> dict[str, Evaluation]:
        """Test-split evaluations of every model, by display name."""
        out = {
            f"InceptionResNetV2 {paper.PAPER_OPTIMIZER_NAMES.get(k, k)}": r.test
            for k, r in self.cnn.items()
        }
        out.update(
            {
                b.label: b.evaluations["test"]
                for b in self.baselines.values()
                if "test" in b.evaluations
            }
        )
        return out


def gather_results(results_dir: str | Path) -> Results:
    """Read every saved run of the results folder."""
    runs_dir = Path(results_dir) / RUNS
    cnn: dict[str, OptimizerRun] = {}
    finetuned: dict[str, OptimizerRun] = {}
    base: dict[str, BaselineRun] = {}
    for path in sorted(runs_dir.glob("*.json")):
        writer = WRITERS["baseline" if path.name.startswith("baseline_") else "cnn"]
        d = _read_json(path, writer)
        try:
            if d.get("kind") == "cnn" and path.name == f"cnn_{d['name']}.json":
                cnn[d["name"]] = OptimizerRun.from_dict(d, path)
            elif d.get("kind") == "cnn" and "_finetune-" in path.stem:
                finetuned[path.stem.removeprefix("cnn_")] = OptimizerRun.from_dict(d, path)
            elif d.get("kind") == "baseline":
                base[d["name"]] = BaselineRun.from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise damaged(path, f"{type(exc).__name__}: {exc}", writer) from None
    if not cnn and not base:
        raise DataError(f"no saved runs in {runs_dir}: run notebooks 03 and 04 first")
    order = [o for o in paper.OPTIMIZERS if o in cnn] + sorted(set(cnn) - set(paper.OPTIMIZERS))
    return Results(
        cnn={k: cnn[k] for k in order},
        baselines=base,
        provenance=read_results_provenance(results_dir),
        finetuned=finetuned,
    )
