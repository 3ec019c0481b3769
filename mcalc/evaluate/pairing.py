"""Two runs read back and paired: a results folder or bundle as a :class:`Run`, its task and models,
and one model's test predictions of both runs matched ROI by ROI (what ``mcalc compare`` compares).

A run is a results folder (``runs/*.json``, ``provenance.json``, ``features.json``) or the book's
results bundle (``mcalc-results.zip``, whose ``records/`` hold the same files). Anything that is
neither raises one :class:`~mcalc.errors.DataError` line.
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcalc.errors import DataError
from mcalc.evaluate.evaluation import Evaluation
from mcalc.evaluate.runs import Results, gather_results
from mcalc.records.results import FEATURES_META, PROVENANCE, RUNS
from mcalc.study import DEFAULT_TASK, TASKS

__all__ = [
    "BUNDLE_RECORDS",
    "BASELINE_ORDER",
    "Run",
    "load_run",
    "run_task",
    "models",
    "PairedPredictions",
    "pair_predictions",
]

#: Where a results bundle (mcalc.report.book.write_bundle) keeps the results folder's files.
BUNDLE_RECORDS = "records"


#: The order of the baselines in a comparison (Table 4's, then the two the paper omits).
BASELINE_ORDER = ("svm", "knn", "majority", "assessment")


@dataclass
class Run:
    """One run read back: its saved results and its features' record (empty when absent)."""

    source: Path
    results: Results
    features_meta: dict = field(default_factory=dict)
    #: the results folder (None for a bundle, which holds no features.npz)
    folder: Path | None = None

    @property
    def name(self) -> str:
        """How the run is named in the report: the path given."""
        return str(self.source)


def _bundle_members(archive: zipfile.ZipFile) -> dict[str, str]:
    """The bundle's records compare reads: member name → path under the results folder.

    Only plain names are taken (``records/provenance.json``, ``records/features.json``,
    ``records/runs/NAME.json``), so nothing is ever written outside the temporary folder.
    """
    plain = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\.json")
    out = {}
    for name in archive.namelist():
        parts = name.split("/")
        if parts[0] != BUNDLE_RECORDS or not plain.fullmatch(parts[-1]):
            continue
        if len(parts) == 2 and parts[1] in (PROVENANCE, FEATURES_META):
            out[name] = parts[1]
        elif len(parts) == 3 and parts[1] == RUNS:
            out[name] = f"{RUNS}/{parts[2]}"
    return out


def _read_folder(folder: Path, source: Path) -> Run:
    """A results folder's runs and features record; DataError (one line) for anything unreadable."""
    if not (folder / RUNS).is_dir():
        raise DataError(
            f"{source} is not a results folder: it has no {RUNS}/ with run records "
            "(notebooks 03 and 04 write them) and is not a results bundle"
        )
    try:
        results = gather_results(folder)
        meta_path = folder / FEATURES_META
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(
            f"{source}: a run record cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    return Run(source, results, meta if isinstance(meta, dict) else {})


def load_run(path: str | Path) -> Run:
    """A results folder or a results bundle (.zip) read back; DataError (one line) when it is neither."""
    source = Path(path)
    if not source.exists():
        raise DataError(
            f"{source} does not exist: give a results folder or a results bundle (.zip)"
        )
    if source.is_dir():
        run = _read_folder(source, source)
        run.folder = source
        return run
    if not zipfile.is_zipfile(source):
        raise DataError(
            f"{source} is neither a results folder nor a results bundle (.zip, mcalc-results.zip)"
        )
    try:
        with zipfile.ZipFile(source) as archive, tempfile.TemporaryDirectory() as tmp:
            members = _bundle_members(archive)
            if not any(p.startswith(f"{RUNS}/") for p in members.values()):
                raise DataError(
                    f"{source} is a zip but not a results bundle: it has no {BUNDLE_RECORDS}/{RUNS}/*.json"
                )
            for name, rel in members.items():
                target = Path(tmp) / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
            return _read_folder(Path(tmp), source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DataError(f"{source}: the bundle cannot be read ({exc})") from None


def run_task(results: Results) -> str:
    """The task a run was made under: its networks' (their configs), else the one its classes name."""
    tasks = {
        r.config.get("task", DEFAULT_TASK)
        for r in [*results.cnn.values(), *results.finetuned.values()]
    }
    if len(tasks) > 1:
        raise DataError(
            f"its networks were trained under several tasks ({', '.join(sorted(tasks))})"
        )
    if tasks:
        return tasks.pop()
    classes = {ev.classes for _, ev in models(results).values()}
    named = [t.name for t in TASKS.values() if (t.classes,) == tuple(classes)]
    return named[0] if len(named) == 1 else (", ".join("/".join(c) for c in classes) or "unknown")


def models(results: Results) -> dict[str, tuple[str, Evaluation]]:
    """Every model of a run with a test evaluation: key (the run record's name) → (label, evaluation)."""
    out = {
        f"cnn_{k}": (f"InceptionResNetV2 {r.paper_name}", r.test) for k, r in results.cnn.items()
    }
    out |= {
        f"cnn_{k}": (f"InceptionResNetV2 {k} (fine-tuned)", r.test)
        for k, r in results.finetuned.items()
    }
    order = [k for k in BASELINE_ORDER if k in results.baselines]
    order += sorted(set(results.baselines) - set(order))
    out |= {
        f"baseline_{k}": (results.baselines[k].label, results.baselines[k].evaluations["test"])
        for k in order
        if "test" in results.baselines[k].evaluations
    }
    return out


@dataclass
class PairedPredictions:
    """One model's test predictions of both runs on the ROIs both tested with the same label."""

    y: np.ndarray
    proba_a: np.ndarray
    proba_b: np.ndarray
    patients: list
    lesions: list | None
    only_a: list[str]
    only_b: list[str]
    label_differs: list[str]


def pair_predictions(a: Evaluation, b: Evaluation) -> PairedPredictions:
    """Match two evaluations' per-ROI predictions by ROI id (both must have kept them)."""
    pa, pb = a.predictions, b.predictions
    ids_b = {r: i for i, r in enumerate(pb["roi_id"])}
    ids_a = set(pa["roi_id"])
    ia, ib, differs = [], [], []
    for i, r in enumerate(pa["roi_id"]):
        j = ids_b.get(r)
        if j is None:
            continue
        if int(pa["label"][i]) != int(pb["label"][j]):
            differs.append(r)
            continue
        ia.append(i)
        ib.append(j)
    take = np.asarray(ia, dtype=int)
    patients = pa.get("patient_id")
    lesions = pa.get("lesion_id")
    return PairedPredictions(
        y=np.asarray(pa["label"], dtype=np.int64)[take],
        proba_a=np.asarray(pa["proba"], dtype=float).reshape(-1, len(a.classes))[take],
        proba_b=np.asarray(pb["proba"], dtype=float).reshape(-1, len(b.classes))[
            np.asarray(ib, dtype=int)
        ],
        patients=None if patients is None else [patients[i] for i in ia],
        lesions=None if lesions is None else [lesions[i] for i in ia],
        only_a=[r for r in pa["roi_id"] if r not in ids_b],
        only_b=[r for r in pb["roi_id"] if r not in ids_a],
        label_differs=differs,
    )
