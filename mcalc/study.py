"""The study's vocabulary: its classes, tasks and splits. Imports nothing of mcalc but its errors.

Every stage names these the same way: ``CLASSES`` in label order (the paper's three pathologies),
a :class:`Task` maps each CBIS-DDSM pathology to one of its classes (or leaves it out, with a reason),
``SPLITS`` are the official CBIS-DDSM splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mcalc.errors import DataError

CLASSES = ("BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT")


@dataclass(frozen=True)
class Task:
    """A classification task: its classes (in label order) and where each CBIS-DDSM pathology goes."""

    name: str
    classes: tuple[str, ...]
    mapping: dict[
        str, str | None
    ]  # pathology → class of the task (None: left out, with ``reason``)
    description: str
    reason: str = ""  # why the pathologies mapped to None are left out

    def class_of(self, pathology: str) -> str | None:
        """The task's class of a pathology (None when the task leaves it out)."""
        return self.mapping[pathology]

    def label(self, pathology: str) -> int | None:
        """The integer label of a pathology under this task (None when left out)."""
        cls = self.class_of(pathology)
        return None if cls is None else self.classes.index(cls)

    def left_out(self) -> tuple[str, ...]:
        """The pathologies this task leaves out."""
        return tuple(p for p, c in self.mapping.items() if c is None)

    @property
    def is_binary(self) -> bool:
        """Benign vs malignant (two classes)."""
        return len(self.classes) == 2


DEFAULT_TASK = "three-class"
TASK_EXCLUSION = "left_out_by_task"  # the manifest's reason for a ROI the task leaves out
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "three-class",
            CLASSES,
            {c: c for c in CLASSES},
            "the paper's task: BENIGN, BENIGN_WITHOUT_CALLBACK and MALIGNANT",
        ),
        Task(
            "binary-merged",
            ("BENIGN", "MALIGNANT"),
            {"BENIGN": "BENIGN", "BENIGN_WITHOUT_CALLBACK": "BENIGN", "MALIGNANT": "MALIGNANT"},
            "benign vs malignant, BENIGN_WITHOUT_CALLBACK counted as BENIGN",
        ),
        Task(
            "binary-biopsied",
            ("BENIGN", "MALIGNANT"),
            {"BENIGN": "BENIGN", "BENIGN_WITHOUT_CALLBACK": None, "MALIGNANT": "MALIGNANT"},
            "benign vs malignant on biopsied findings; BENIGN_WITHOUT_CALLBACK left out",
            reason="BENIGN_WITHOUT_CALLBACK (not biopsied) is not a class of the binary-biopsied task",
        ),
    )
}


def get_task(name: str | Task) -> Task:
    """The task of this name (a Task passes through); ValueError naming the valid ones otherwise."""
    if isinstance(name, Task):
        return name
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def apply_task(manifest: pd.DataFrame, task: str | Task) -> pd.DataFrame:
    """The manifest under a task: labels from the task's classes; usable ROIs the task leaves out are
    marked excluded (reason ``left_out_by_task``, the task's reason as detail), never dropped."""
    task = get_task(task)
    out = manifest.copy()
    known = out["pathology"].isin(list(task.mapping))
    out.loc[known, "label"] = [task.label(p) for p in out.loc[known, "pathology"]]
    out["label"] = pd.array(pd.to_numeric(out["label"], errors="coerce"), dtype="Int64")
    left = known & out["pathology"].isin(task.left_out())
    newly = left & out["status"].ne("excluded")
    out.loc[newly, "status"] = "excluded"
    out.loc[newly, "reason"] = TASK_EXCLUSION
    out.loc[newly, "detail"] = f"task {task.name}: {task.reason}"
    return out


def check_task_classes(counts: pd.DataFrame, task: str | Task, where: str) -> None:
    """DataError when a class of the task has no usable ROI in a split (``counts``: split × pathology);
    under three-class, a data set without BENIGN_WITHOUT_CALLBACK is told which binary task runs it."""
    task = get_task(task)
    for split in counts.index:
        for cls in task.classes:
            n = sum(int(counts.loc[split].get(p, 0)) for p, c in task.mapping.items() if c == cls)
            if n == 0:
                hint = (
                    " (a benign-vs-malignant data set runs with --task binary-biopsied or "
                    "--task binary-merged)"
                    if not task.is_binary and cls == CLASSES[1]
                    else ""
                )
                raise DataError(
                    f"{where}: class {cls} has no ROI in the {split} split (task {task.name}){hint}"
                )


SPLITS = ("train", "test")  # the official CBIS-DDSM splits, in this order
#: Bootstrap resamples behind every interval the study reports: the study's choice, not the paper's
#: (the paper reports no intervals). Every ``n_boot`` default and the default profile take this.
N_BOOT = 1000
KAGGLE_JPEG = (
    "kaggle-jpeg"  # the release code of the Kaggle JPEG re-release ("" is the DICOM release)
)
