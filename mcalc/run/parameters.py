"""The notebooks' parameters: one declared spec per name (type and range), checked when a template starts.

Every template calls :func:`check_parameters` right after its ``parameters`` cell (papermill puts
the injected values between the two), so that ``-p epochs abc`` or ``-p learning_rate nan`` stops
at once with one line naming the parameter, the value given and the values accepted, instead of a
traceback minutes later. Sweeps check their grid axes against the same specs
(:func:`parameter_problem`). A parameter a template declares must have a spec here
(``tests/run/test_parameters.py``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcalc.errors import DataError

__all__ = [
    "SEED_MAX",
    "Spec",
    "MAX_IMAGE_SIZE",
    "SPECS",
    "parameter_spec",
    "parameter_problem",
    "check_parameters",
]

SEED_MAX = 2**32 - 1  # NumPy's and TensorFlow's seeds both take this range


@dataclass(frozen=True)
class Spec:
    """What one parameter accepts: an integer or number in a range, text, one of some choices, a flag."""

    kind: str  # "int", "number", "numbers", "text", "choice", "flag", "weights", "validation"
    low: float | None = None  # inclusive
    high: float | None = None  # inclusive
    choices: tuple[str, ...] = ()
    optional: bool = False  # None accepted
    fold_case: bool = False  # choices compared without case
    empty: bool = False  # text: "" accepted (it means "the default")

    def accepted(self) -> str:
        """The accepted values in words."""
        none = " or None" if self.optional else ""
        if self.kind in ("int", "number"):
            word = "an integer" if self.kind == "int" else "a finite number"
            bounds = []
            if self.low is not None:
                bounds.append(f">= {self.low:g}" if self.low != 0 or self.kind == "int" else "> 0")
            if self.high is not None:
                bounds.append(f"<= {int(self.high)}" if self.kind == "int" else f"<= {self.high:g}")
            return f"{word} {' and '.join(bounds)}".strip() + none
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices) + none
        if self.kind == "numbers":
            return "a non-empty list of finite numbers > 0"
        if self.kind == "flag":
            return "True or False"
        if self.kind == "weights":
            return "auto, imagenet, random, or the path of an .h5 / .hdf5 file"
        if self.kind == "validation":
            return (
                "a count of ROIs (an integer >= 1) or a fraction of the training split (0 < f < 1)"
            )
        return ("a text" if self.empty else "a non-empty text") + none

    def problem(self, value: Any) -> str | None:
        """Why value is not accepted (None when it is)."""
        if value is None:
            return None if self.optional else "missing"
        if self.kind == "flag":
            return None if isinstance(value, bool) else "not True or False"
        if self.kind == "numbers":
            if not isinstance(value, list | tuple) or not value:
                return "not a non-empty list"
            each = Spec("number", low=0)
            return next((f"{why} at {v!r}" for v in value if (why := each.problem(v))), None)
        if isinstance(value, bool) and self.kind != "text":
            return "a flag, not a number"
        if self.kind in ("int", "number", "validation"):
            if not isinstance(value, numbers.Real):
                return "not a number"
            if not math.isfinite(float(value)):
                return "not finite"
        if self.kind == "int":
            if not isinstance(value, numbers.Integral):
                return "not an integer"
            return self._range(value)
        if self.kind == "number":
            if self.low == 0 and value <= 0:
                return "not > 0"
            return self._range(value)
        if self.kind == "validation":
            ok = (0 < value < 1) or (isinstance(value, numbers.Integral) and value >= 1)
            return None if ok else "neither a count >= 1 nor a fraction between 0 and 1"
        if not isinstance(value, str) or not (value.strip() or self.empty):
            return "not a non-empty text"
        if self.kind == "choice":
            seen = value.lower() if self.fold_case else value
            return None if seen in self.choices else "not an accepted value"
        if self.kind == "weights":
            name = value.strip().lower()
            if name in ("auto", "imagenet", "random") or name.endswith((".h5", ".hdf5")):
                return None
            return "not a weights spec"
        return None

    def _range(self, value: float) -> str | None:
        """Why value is outside [low, high] (None when inside)."""
        if self.low is not None and value < self.low:
            return "too small"
        if self.high is not None and value > self.high:
            return "too large"
        return None


def _scale_spec() -> Spec:
    """phantom_scale: the phantom's own bounds."""
    from mcalc.data.phantom import MAX_SCALE

    return Spec("number", low=0, high=MAX_SCALE)


def _choice(module: str, name: str, fold_case: bool = False) -> Callable[[], Spec]:
    """A choice spec whose choices are the names of ``module.name`` (their one definition), read on use."""

    def build() -> Spec:
        """The spec, its module imported now."""
        import importlib

        return Spec(
            "choice",
            choices=tuple(getattr(importlib.import_module(module), name)),
            fold_case=fold_case,
        )

    return build


def _image_size_spec() -> Spec:
    """image_size: the smallest input the backbone takes, and a size budget."""
    from mcalc.learn.preprocessing import MIN_IMAGE_SIZE

    return Spec("int", low=MIN_IMAGE_SIZE, high=MAX_IMAGE_SIZE)


#: The largest backbone input accepted (the paper: 299): a size budget, not a property of the model.
MAX_IMAGE_SIZE = 2048

#: Every notebook parameter's spec, built on use (choices and bounds come from their one definition,
#: imported only when a template declares the parameter).
SPECS: dict[str, Callable[[], Spec]] = {
    "data_source": lambda: Spec("choice", choices=("phantom", "cbis-ddsm")),
    "data_root": lambda: Spec("text", empty=True),  # "": the phantom's own folder
    "results_dir": lambda: Spec("text"),
    "cache_dir": lambda: Spec("text"),
    "run_record": lambda: Spec("text", optional=True, empty=True),
    "sweep_name": lambda: Spec("text"),
    "phantom_scale": _scale_spec,
    "copies_scale": _scale_spec,
    "seed": lambda: Spec("int", low=0, high=SEED_MAX),
    "split_seed": lambda: Spec("int", low=0, high=SEED_MAX, optional=True),
    "task": _choice("mcalc.study", "TASKS"),
    "image_size": _image_size_spec,
    "weights": lambda: Spec("weights"),
    "backbone_variant": _choice("mcalc.learn.backbone", "VARIANTS"),
    "resize_antialias": lambda: Spec("flag"),
    "optimizer": _choice("mcalc.paper", "OPTIMIZERS", fold_case=True),
    "learning_rate": lambda: Spec("number", low=0),
    "selection_learning_rates": lambda: Spec("numbers"),
    "batch_size": lambda: Spec("int", low=1),
    "epochs": lambda: Spec("int", low=1),
    "validation_size": lambda: Spec("validation"),
    "train_backbone": _choice("mcalc.learn.finetune", "TRAIN_BACKBONE"),
    "n_boot": lambda: Spec("int", low=0),
    "cv_folds": lambda: Spec("int", low=2),
    "glcm_levels": lambda: Spec("int", low=2, high=256),
    "n_seeds": lambda: Spec("int", low=1),
    "n_split_seeds": lambda: Spec("int", low=2),  # an interval over split seeds needs two
}


def parameter_spec(name: str) -> Spec | None:
    """The spec of a notebook parameter, or None when no template declares it."""
    build = SPECS.get(name)
    return None if build is None else build()


def parameter_problem(name: str, value: Any) -> str | None:
    """One line on why value is not accepted for the parameter (None when it is, or has no spec)."""
    spec = parameter_spec(name)
    if spec is None:
        return None
    why = spec.problem(value)
    if why is None:
        return None
    return f"parameter {name} = {value!r} is {why}: give {spec.accepted()}"


def check_parameters(namespace: dict[str, Any]) -> None:
    """DataError (one line, no traceback in a notebook) for the first parameter in namespace (a
    template's globals) whose value its spec does not accept."""
    for name in SPECS:
        if name in namespace:
            problem = parameter_problem(name, namespace[name])
            if problem:
                raise DataError(problem)
