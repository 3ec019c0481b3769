"""The run profiles: a consistent set of parameters for every notebook of one book build (default or ci)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from mcalc.data.phantom.store import PHANTOM_STORE, phantom_folder
from mcalc.learn.backbone import DEFAULT_VARIANT
from mcalc.paper import BATCH_SIZE, EPOCHS, IMAGE_SIZE, LEARNING_RATE, VALIDATION_SIZE
from mcalc.study import DEFAULT_TASK, N_BOOT, get_task

__all__ = ["SweepSection", "Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class SweepSection:
    """How a profile runs its sweeps (chapter 7's optimizer × seed grid, ``mcalc sweep``) on Dask."""

    scheduler: str = "local"  # "local": a LocalCluster here; "serial": no Dask; or tcp://HOST:8786
    workers: int = 0  # LocalCluster workers (0: one per core, or one per GPU when there are GPUs)
    shared_fs: bool = (
        False  # workers use this machine's paths instead of receiving inputs through Dask
    )


@dataclass(frozen=True)
class Profile:
    """A consistent set of parameters for every notebook of one book build."""

    name: str
    data_source: str = "phantom"  # "phantom" or "cbis-ddsm"
    #: the folder of a CBIS-DDSM download; empty for the phantom: its own folder under phantom_store
    data_root: str = ""
    phantom_scale: float = 1.0
    #: where the phantoms are written, one folder per layout, scale and seed (each kept for later builds)
    phantom_store: str = PHANTOM_STORE
    seed: int = 0
    task: str = (
        DEFAULT_TASK  # mcalc.study.TASKS: three-class (the paper), binary-merged, binary-biopsied
    )
    image_size: int = IMAGE_SIZE
    weights: str = "auto"
    #: how the frozen backbone runs (mcalc.learn.backbone.VARIANTS): float32 folded by default;
    #: "folded+bf16" is the opt-in bfloat16 arithmetic (faster, features not float32's)
    backbone_variant: str = DEFAULT_VARIANT
    epochs: int = EPOCHS
    batch_size: int = BATCH_SIZE
    learning_rate: float = LEARNING_RATE
    #: ROIs held out for validation at the real size (an int), or a fraction of the training split (< 1)
    validation_size: int | float = VALIDATION_SIZE
    n_boot: int = N_BOOT
    cv_folds: int = 10
    n_seeds: int = 5
    #: split seeds per scheme of chapter 6's leakage audit (≥ 2 for an interval on the gap)
    n_split_seeds: int = 10
    #: learning rates of chapter 5's test-selection search (the paper's: 1e-2 to 1e-5)
    selection_learning_rates: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)
    results_dir: str = "results"
    cache_dir: str = "cache"
    out_dir: str = "book/executed"
    sweep: SweepSection = SweepSection()

    def validation(self) -> int | float:
        """The validation hold-out: a count scales with the phantom (200 ROIs at scale 1, 20 at 0.1); a fraction does not."""
        if self.data_source == "phantom" and self.validation_size >= 1 and self.phantom_scale != 1:
            return max(1, round(self.validation_size * self.phantom_scale))
        return self.validation_size

    def data_folder(self) -> str:
        """The data root the notebooks read: ``data_root``, or the phantom's folder for this scale and seed."""
        if self.data_root or self.data_source != "phantom":
            return self.data_root
        return str(phantom_folder(self.phantom_store, self.phantom_scale, self.seed))

    def parameters(self) -> dict:
        """Every value this profile gives the notebooks; each execution receives those its template declares."""
        return {
            "data_source": self.data_source,
            "data_root": self.data_folder(),
            "phantom_scale": self.phantom_scale,
            "seed": self.seed,
            "task": self.task,
            "image_size": self.image_size,
            "weights": self.weights,
            "backbone_variant": self.backbone_variant,
            "results_dir": self.results_dir,
            "cache_dir": self.cache_dir,
            "n_boot": self.n_boot,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "validation_size": self.validation(),
            "cv_folds": self.cv_folds,
            "n_seeds": self.n_seeds,
        }


PROFILES = {
    # The book: the phantom at the real size, the paper's settings.
    "default": Profile(name="default"),
    # CI and nbval: a tiny phantom, small images, few epochs. Each notebook runs in seconds.
    "ci": Profile(
        name="ci",
        phantom_store="build/ci/data/phantom",
        phantom_scale=0.05,
        image_size=75,
        epochs=3,
        validation_size=0.2,
        n_boot=50,
        cv_folds=3,
        n_seeds=2,
        n_split_seeds=2,
        selection_learning_rates=(1e-3, 1e-4),
        results_dir="build/ci/results",
        cache_dir="build/ci/cache",
        out_dir="build/ci/notebooks",
    ),
}


def get_profile(name: str, **overrides) -> Profile:
    """A named profile, with any fields overridden (``None`` values ignored)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    if overrides.get("task") is not None:
        get_task(overrides["task"])  # ValueError naming the tasks
    return replace(PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})
