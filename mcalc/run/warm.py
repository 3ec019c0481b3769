"""Warm notebook kernels for sweeps: one kernel kept per worker thread, reset between points.

A sweep point is one papermill execution of a template; in a fresh kernel it pays the kernel's start
and the imports (TensorFlow: seconds) before its own work. A :class:`KernelPool` keeps the kernels
of one process alive from point to point and, before each point, resets what a point may have
changed: the user namespace (``%reset -f``), the working folder, Keras' session (its name counters
and graphs), matplotlib's figures and settings (restored to the kernel's first state), the warnings
already shown (so a point's notebook shows its own warnings) — and the training seeds itself, as
every mcalc training does. Imported modules stay: that is the point of the pool, and they are the
same code for every point. A kernel that died (a point that killed it) is replaced by a new one.

On Dask, the pool is a worker plugin (:meth:`distributed.Client.register_plugin`): each worker gets
its own, and its kernels are shut down when the plugin is removed or the worker closes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from mcalc.run.runner import kernel_manager

__all__ = ["RESET", "KernelPool"]

#: Run in a warm kernel before each point (``{cwd!r}``: the point's working folder).
RESET = """\
__import__("os").chdir({cwd!r})
%reset -f
import gc as _gc, sys as _sys, warnings as _warnings
_state = _sys.modules.setdefault("_mcalc_warm_state", type(_sys)("_mcalc_warm_state"))
import matplotlib as _mpl, matplotlib.pyplot as _plt
_plt.close("all")
if hasattr(_state, "rc"):
    _mpl.rcParams.update({{_k: _v for _k, _v in _state.rc.items() if _k != "backend"}})
else:
    _state.rc = _mpl.rcParams.copy()
if "keras" in _sys.modules:
    _sys.modules["keras"].backend.clear_session()
for _m in list(_sys.modules.values()):
    _registry = getattr(_m, "__warningregistry__", None)
    if isinstance(_registry, dict):
        _registry.clear()
if hasattr(_warnings, "_filters_mutated"):
    _warnings._filters_mutated()
_gc.collect()
%reset -f
"""


class KernelPool(WorkerPlugin):
    """The warm kernels of one process (a Dask worker's, or this one's in a serial sweep)."""

    name = "mcalc-warm-kernels"

    def __init__(self, folder: str | Path | None = None) -> None:
        """Kernels' logs go to ``folder`` (on Dask: the worker's local directory, set at setup)."""
        self.folder = None if folder is None else Path(folder)
        self._idle: list[tuple[object, Path, int]] = []  # (manager, log, points it ran)
        self._lock = threading.Lock()
        self.started = 0  # kernels started so far (a warm pool starts one per thread)

    def __getstate__(self) -> dict:
        """What travels to a Dask worker: the folder only (kernels and locks are per process)."""
        return {"folder": self.folder}

    def __setstate__(self, state: dict) -> None:
        """A new, empty pool on the receiving side."""
        self.__init__(state["folder"])

    def setup(self, worker) -> None:
        """On a Dask worker: logs in its local directory."""
        self.folder = Path(worker.local_directory)

    def teardown(self, worker) -> None:
        """On a Dask worker: shut the kernels down."""
        self.close()

    def _start(self) -> tuple[object, Path, int]:
        """A new kernel whose output goes to its own log; the manager, the log and 0 points run."""
        from jupyter_core.utils import run_sync

        folder = Path(self.folder) / "mcalc-kernels"
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.started += 1
            log = folder / f"kernel-{self.started}.log"
        km = kernel_manager(log, folder)
        run_sync(km.start_kernel)()
        return km, log, 0

    @contextlib.contextmanager
    def kernel(self, cwd: Path) -> Iterator[tuple[object, Path, int, int]]:
        """A warm kernel reset for a point working in ``cwd``: (manager, its log, the log's size
        before, how many points it ran before this one)."""
        from jupyter_core.utils import run_sync

        with self._lock:
            taken = self._idle.pop() if self._idle else None
        if taken is not None and not run_sync(taken[0].is_alive)():
            _shutdown(taken[0])
            taken = None
        km, log, uses = taken or self._start()
        try:
            _reset(km, cwd)
        except Exception:
            _shutdown(km)
            if taken is None:
                raise
            km, log, uses = self._start()  # a kernel a point left unusable: a new one
            try:
                _reset(km, cwd)
            except Exception:
                _shutdown(km)
                raise
        start = log.stat().st_size if log.exists() else 0
        alive = False
        try:
            yield km, log, start, uses
            alive = run_sync(km.is_alive)()
        finally:
            if alive:
                with self._lock:
                    self._idle.append((km, log, uses + 1))
            else:
                _shutdown(km)

    def close(self) -> None:
        """Shut every idle kernel down."""
        with self._lock:
            idle, self._idle = self._idle, []
        for km, _, _ in idle:
            _shutdown(km)

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reset(km, cwd: Path, timeout: float = 120) -> None:
    """Run :data:`RESET` in the kernel (a RuntimeError when it fails)."""
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        reply = kc.execute_interactive(
            RESET.format(cwd=str(cwd)), timeout=timeout, output_hook=lambda msg: None
        )
    finally:
        kc.stop_channels()
    if reply["content"]["status"] != "ok":
        content = reply["content"]
        raise RuntimeError(
            f"resetting a warm kernel failed: {content.get('ename')}: {content.get('evalue')}"
        )


def _shutdown(km) -> None:
    """Shut a kernel down, whatever state it is in."""
    from jupyter_core.utils import run_sync

    with contextlib.suppress(Exception):
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
