"""Measuring on this machine: its description, CPU and memory use, timed calls and measured subprocesses."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.config import GB


def _cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    """Physical memory in bytes."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def machine_info() -> dict:
    """CPU model, cores, RAM, Python / TensorFlow / Keras versions and the compute device."""
    import keras
    import tensorflow as tf

    from mcalc.learn.model import compute_device

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "cpu": _cpu_model(),
        "cores": usable,
        "ram_gb": round(_ram_bytes() / GB, 1),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "device": compute_device(),
        "platform": platform.platform(),
    }


def busy_cpu_s() -> float | None:
    """CPU seconds spent by the whole machine (all processes, all cores) since boot, from /proc/stat; None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def self_peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident bytes) of every process, read from /proc (empty elsewhere)."""
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            table[int(name)] = (int(fields[1]), int(fields[21]) * page)
        except (OSError, ValueError, IndexError):
            continue
    return table


def tree_rss(root: int, include_root: bool = True) -> int:
    """Summed resident memory of process ``root`` (unless ``include_root`` is false) and all its descendants, in bytes."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid != root or include_root:
            total += table.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return total


@dataclass
class ProcessCost:
    """Wall time and memory of one measured subprocess."""

    command: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int  # largest single process of the command (the kernel's ru_maxrss)
    peak_tree_rss_bytes: int  # largest sampled sum over the process tree (10 Hz)
    log: str


_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_measured(
    command: list[str], log_path: Path, env: dict | None = None, interval_s: float = 0.1
) -> ProcessCost:
    """Run ``command``, sampling its process tree's memory; wall time, peak RSS, exit status, output in ``log_path``.

    The command is started by a small launcher process, whose ``RUSAGE_CHILDREN`` gives the largest
    resident set of the command's processes: Linux carries a process's peak RSS across ``exec``, so
    the peak of a child forked directly from this (large) process would include this process's own.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log_path.with_suffix(".maxrss")
    rss_file.unlink(missing_ok=True)
    peak_tree = [0]
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(rss_file), *map(str, command)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        done = threading.Event()

        def sample() -> None:
            """Record the largest summed RSS of the command's processes (the launcher excluded) until it ends."""
            while not done.wait(interval_s):
                peak_tree[0] = max(peak_tree[0], tree_rss(proc.pid, include_root=False))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        proc.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    try:
        maxrss = int(rss_file.read_text())
    except (OSError, ValueError):
        maxrss = 0
    maxrss = maxrss if sys.platform == "darwin" else maxrss * 1024
    return ProcessCost(
        command=[str(c) for c in command],
        returncode=proc.returncode,
        wall_s=wall,
        peak_rss_bytes=int(maxrss),
        peak_tree_rss_bytes=int(max(peak_tree[0], maxrss)),
        log=str(log_path),
    )


def tail(path: str, n: int = 5) -> str:
    """Last ``n`` lines of a log file, for error messages."""
    try:
        return " | ".join(Path(path).read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return ""


def median_time(fn, repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls; and all times."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def epoch_timer(times: list[float]):
    """A Keras callback appending each epoch's wall time (its begin to its end) to ``times``."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall time per epoch."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            """Start the epoch's clock."""
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            """Record the epoch's wall time."""
            times.append(time.perf_counter() - self._start)

    return EpochTimer()


def timed_method(obj, name: str, times: list[float]) -> None:
    """Wrap the method ``name`` of ``obj`` (on the instance) so that every call's wall time is appended to ``times``."""
    method = getattr(obj, name)

    def timed(*args, **kwargs):
        """The wrapped method, timed."""
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)

    setattr(obj, name, timed)
