"""Safe writes (mcalc.records.fsio): whole or nothing, the umask's permissions, sets of files, stale temporaries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mcalc.errors import Busy
from mcalc.records import fsio


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    return int(proc.stdout)


def aged(path: Path, seconds_before_start: float = 60) -> Path:
    """Set a file's mtime to before this process started."""
    t = fsio.process_start_time() - seconds_before_start
    os.utime(path, (t, t))
    return path


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_write_follows_the_umask(tmp_path, umask, mode):
    """A written file has 0666 less the umask, like any new file (not mkstemp's 0600)."""
    old = os.umask(umask)
    try:
        path = fsio.write_text(tmp_path / "a" / "x.json", "{}\n")
    finally:
        os.umask(old)
    assert path.read_text() == "{}\n" and (path.stat().st_mode & 0o777) == mode


def test_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    """A writer that fails halfway: the target keeps its content and no temporary file remains."""
    target = fsio.write_text(tmp_path / "x.csv", "old\n")

    def half(fh):
        """Write a little, then fail."""
        fh.write("new, partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        fsio.atomic_write(target, half)
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["x.csv"]


def test_write_files_is_all_or_none_when_a_write_fails(tmp_path):
    """The second of three writes fails: none of the three files changes, no debris."""
    paths = [fsio.write_text(tmp_path / f"{n}.csv", f"old {n}\n") for n in "abc"]

    def fail(_fh):
        """A failing writer."""
        raise OSError(5, "Input/output error")

    writers = {paths[0]: lambda fh: fh.write("new a\n"), paths[1]: fail}
    writers[tmp_path / "d.csv"] = lambda fh: fh.write("new d\n")
    with pytest.raises(OSError):
        fsio.write_files(writers)
    assert [p.read_text() for p in paths] == ["old a\n", "old b\n", "old c\n"]
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.csv", "c.csv"]


def test_write_files_is_all_or_none_when_a_rename_fails(tmp_path, monkeypatch):
    """The rename of the second file fails: the first is put back, a new one removed."""
    a = fsio.write_text(tmp_path / "a.csv", "old a\n")
    new = tmp_path / "new.csv"
    real = os.replace
    calls = []

    def flaky(src, dst):
        """Fail the second rename onto a target."""
        if not Path(dst).name.startswith("."):
            calls.append(dst)
            if len(calls) == 2:
                raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError):
        fsio.write_files({new: lambda fh: fh.write("n\n"), a: lambda fh: fh.write("new a\n")})
    monkeypatch.undo()
    assert a.read_text() == "old a\n" and not new.exists()
    assert os.listdir(tmp_path) == ["a.csv"]
    fsio.write_files({new: lambda fh: fh.write("n\n"), a: lambda fh: fh.write("new a\n")})
    assert a.read_text() == "new a\n" and new.read_text() == "n\n"


def test_write_new_first_writer_wins(tmp_path):
    """write_new writes once; a second writer leaves the first one's file alone."""
    path = tmp_path / "r.json"
    assert fsio.write_new(path, lambda fh: fh.write("first"))
    assert not fsio.write_new(path, lambda fh: fh.write("second"))
    assert path.read_text() == "first" and os.listdir(tmp_path) == ["r.json"]


def test_sweep_removes_only_dead_writers_old_temporaries(tmp_path):
    """Old temporaries of ended writers (and legacy names) go; live writers' and recent ones stay."""
    gone = dead_pid()
    dead = tmp_path / f".x.npz.{gone}-0123456789ab.tmp"
    legacy = tmp_path / ".0123456789abcdef.k2j3h4.tmp"
    live = tmp_path / f".y.npz.{os.getppid()}-0123456789ab.tmp"
    mine = tmp_path / f".z.npz.{os.getpid()}-0123456789ab.tmp"
    fresh = tmp_path / f".w.npz.{gone}-0123456789ab.tmp"
    keep = tmp_path / "data.npz"
    for p in (dead, legacy, live, mine, fresh, keep):
        p.touch()
        if p is not fresh:
            aged(p)
    removed = fsio.sweep_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead, legacy])
    assert all(p.exists() for p in (live, mine, fresh, keep))


# ---------------------------------------------------------------------- exclusive writes (issue 27)


def _hold(folder: Path, what: str, ready, release) -> None:
    """Hold folder's lock in a thread until release is set."""
    with fsio.exclusive(folder, what):
        ready.set()
        release.wait(10)


def test_exclusive_refuses_a_second_writer_naming_the_holder(tmp_path):
    """wait=False: a second holder of the same folder gets Busy (one line, the holder's pid), not a race."""
    ready, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(tmp_path, "the folder x", ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(
            Busy, match=rf"the folder x is in use by another mcalc run \(pid {os.getpid()}"
        ):
            with fsio.exclusive(tmp_path, "the folder x", wait=False):
                pass
    finally:
        release.set()
        holder.join()
    with fsio.exclusive(tmp_path, "the folder x", wait=False):  # released: free again
        pass


def test_exclusive_waits_for_the_holder_and_says_so(tmp_path):
    """wait=True: the second writer starts only after the first has finished, and says it waits."""
    order, said = [], []
    ready, release = threading.Event(), threading.Event()

    def first():
        with fsio.exclusive(tmp_path, "x"):
            ready.set()
            release.wait(10)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    assert ready.wait(10)
    threading.Timer(0.3, release.set).start()
    with fsio.exclusive(tmp_path, "x", say=said.append):
        order.append("second")
    thread.join()
    assert order == ["first done", "second"]
    assert len(said) == 1 and said[0].startswith("waiting for another mcalc run")


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    """The lock is the system's (flock): a holder killed mid-write releases it."""
    code = (
        "import sys, time\nfrom mcalc.records import fsio\n"
        f"with fsio.exclusive({str(tmp_path)!r}, 'x'):\n    print('held', flush=True)\n    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(Busy):
            with fsio.exclusive(tmp_path, "x", wait=False):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    time.sleep(0.1)
    with fsio.exclusive(tmp_path, "x", wait=False):
        pass


def test_name_problem_counts_the_temporary_name_the_write_uses(tmp_path):
    """A name that fits the file system but whose temporary (``.<name>.<pid>-<hex>.tmp``) does not is
    refused up front, naming by how much to shorten it; a short name passes."""
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    fits_alone = tmp_path / ("m" * (limit - 4) + ".csv")  # a legal name by itself
    problem = fsio.name_problem(fits_alone)
    assert problem and "temporary name" in problem and "shorten it by" in problem
    assert fsio.name_problem(tmp_path / "manifest.csv") is None
    overhead = fsio.temp_name_length("")
    assert fsio.name_problem(tmp_path / ("m" * (limit - overhead))) is None
    assert fsio.name_problem(tmp_path / ("m" * (limit - overhead + 1))) is not None
