"""Run records: one optimizer run or the baselines, as the notebooks write them under ``runs/``, and read back.

A record carries its evaluations (:class:`mcalc.evaluate.evaluation.Evaluation`), its provenance and the
analysis plan's hash (:func:`mcalc.evaluate.plan.plan_hash`) it was judged under.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mcalc import paper
from mcalc.errors import DataError
from mcalc.evaluate.evaluation import Evaluation
from mcalc.evaluate.plan import plan_hash
from mcalc.records.provenance import Provenance
from mcalc.records.results import (
    RUNS,
    WRITERS,
    damaged,
    read_json,
    read_results_provenance,
)

__all__ = [
    "OptimizerRun",
    "BaselineRun",
    "Results",
    "gather_results",
]


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
    #: the content hash of the analysis plan (mcalc.evaluate.plan) in force when the run was recorded
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
    #: the content hash of the analysis plan (mcalc.evaluate.plan) in force when the run was recorded
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
        d = read_json(path, writer)
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
