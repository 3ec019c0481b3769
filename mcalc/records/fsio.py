"""Writing files safely: whole or not at all, with ordinary permissions, nothing left behind.

Every output of mcalc (manifest, exclusion and swaps reports, run records, feature files, cache
rows, the phantom's marker) is written through :func:`atomic_write`: the content goes to a
temporary file beside the target (``.<name>.<pid>-<random>.tmp``), created with mode 0666 so the
umask applies exactly as to any other new file, and is renamed onto the target only once complete;
on any failure the temporary file is removed and the target keeps its previous content.
:func:`write_new` writes a file only if it does not exist yet (the first of several writers wins);
:func:`write_files` writes several files as a set: all of them are replaced, or (when one fails)
none. :func:`sweep_stale_temporaries` removes the temporary files that a killed writer left behind.

A folder that several processes may write at once (a data set being generated, the executed
notebooks, a book's build tree) is written only while holding :func:`exclusive` on its lock file
(``LOCK_NAME``, an advisory ``flock``): a second writer waits for the first or, where waiting makes
no sense, is refused with :class:`~mcalc.errors.Busy` naming the holder. :func:`name_problem` checks
up front that the names a write will use (the target and its temporary) fit the file system.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from mcalc.errors import Busy

__all__ = [
    "LOCK_NAME",
    "PID_DIGITS",
    "TEMP_NAME",
    "LEGACY_TEMP_NAME",
    "Writer",
    "atomic_write",
    "write_new",
    "write_text",
    "write_bytes",
    "write_files",
    "process_start_time",
    "sweep_stale_temporaries",
    "temp_name_length",
    "name_problem",
    "exclusive",
]

#: Lock file of a folder written by one process at a time (see :func:`exclusive`); never data.
LOCK_NAME = ".mcalc.lock"
#: Longest process id written into a temporary file's name (Linux allows up to 2**22).
PID_DIGITS = 7
#: Name of a temporary file written by this module: ``.<target name>.<pid>-<random hex>.tmp``.
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)-[0-9a-f]{12}\.tmp$")
#: Legacy temporary names (``tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")``), no writer pid.
LEGACY_TEMP_NAME = re.compile(r"^\..+\.tmp$")

Writer = Callable[[IO], None]


def _temp_path(path: Path) -> Path:
    """A fresh temporary file name beside path, naming this process as its writer."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")


def _create(path: Path) -> tuple[Path, int]:
    """Create a new, empty temporary file beside path (mode 0666 less the umask); its path and fd."""
    for _ in range(100):
        tmp = _temp_path(path)
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def _discard(tmp: Path) -> None:
    """Remove a temporary file, ignoring that it is already gone."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def _stage(path: Path, write: Writer, binary: bool) -> Path:
    """Write a complete temporary file beside path with ``write(fh)``; removed again on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _create(path)
    try:
        mode = "wb" if binary else "w"
        kwargs = {} if binary else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def atomic_write(path: str | Path, write: Writer, binary: bool = False) -> Path:
    """Write path atomically: ``write(fh)`` fills a temporary file that then replaces path."""
    path = Path(path)
    tmp = _stage(path, write, binary)
    try:
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
    return path


def write_new(path: str | Path, write: Writer, binary: bool = False) -> bool:
    """Write path atomically unless it exists (the first writer wins); True when this call wrote it."""
    path = Path(path)
    tmp = _stage(path, write, binary)
    try:
        os.link(tmp, path)  # atomic, and fails when another writer got there first
        return True
    except FileExistsError:
        return False
    finally:
        _discard(tmp)


def write_text(path: str | Path, text: str) -> Path:
    """Write text (UTF-8, line ends as given) to path atomically."""
    return atomic_write(path, lambda fh: fh.write(text))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to path atomically."""
    return atomic_write(path, lambda fh: fh.write(data), binary=True)


@contextlib.contextmanager
def _backups(targets: list[Path]) -> Iterator[dict[Path, Path | None]]:
    """Hard links (or copies) of the targets that exist, removed when the block ends."""
    saved: dict[Path, Path | None] = {}
    try:
        for target in targets:
            if target.exists():
                backup = _temp_path(target)
                try:
                    os.link(target, backup)
                except OSError:
                    shutil.copy2(target, backup)
                saved[target] = backup
            else:
                saved[target] = None
        yield saved
    finally:
        for backup in saved.values():
            if backup is not None:
                _discard(backup)


def write_files(writers: dict[str | Path, Writer], binary: bool = False) -> list[Path]:
    """Write several files as a set: every one replaced, or (when any write fails) none changed."""
    targets = [Path(p) for p in writers]
    staged: list[Path] = []
    try:
        for target, write in zip(targets, writers.values()):
            staged.append(_stage(target, write, binary))
        with _backups(targets) as saved:
            done: list[Path] = []
            try:
                for tmp, target in zip(staged, targets):
                    os.replace(tmp, target)
                    done.append(target)
            except BaseException:
                for target in done:  # put back what this call replaced
                    if saved[target] is None:
                        _discard(target)
                    else:
                        os.replace(saved[target], target)
                raise
    finally:
        for tmp in staged:
            _discard(tmp)
    return targets


def _pid_running(pid: int) -> bool:
    """True when a process with this id exists on this machine (or cannot be probed)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def process_start_time() -> float:
    """When this process started (epoch seconds); the current time where the system cannot tell."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def sweep_stale_temporaries(folder: str | Path, pattern: str = "*.tmp") -> list[Path]:
    """Remove the temporary files under folder (glob pattern) left by writers that are gone; returns them.

    A temporary file is stale when it is older than this process and its writer (the pid in its
    name) no longer runs; one without a pid in its name (written before this module) only needs to
    be older than this process. A live writer's file is never touched.
    """
    started = process_start_time()
    removed = []
    for path in Path(folder).glob(pattern):
        match = TEMP_NAME.match(path.name)
        if match is None and not LEGACY_TEMP_NAME.match(path.name):
            continue
        try:
            if not path.is_file() or path.stat().st_mtime >= started:
                continue
            if match is not None and _pid_running(int(match.group("pid"))):
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def temp_name_length(name: str) -> int:
    """Bytes of the longest temporary file name :func:`atomic_write` may use for a target called name."""
    return len(f".{name}.{'9' * PID_DIGITS}-{'0' * 12}.tmp".encode())


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system under folder (or its nearest existing parent) takes."""
    probe = Path(folder)
    while not probe.is_dir() and probe != probe.parent:
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def name_problem(path: str | Path) -> str | None:
    """Why a file cannot be written at path under the names the write really uses (None when it can)."""
    path = Path(path)
    longest = _name_max(path.parent)
    for part in path.parts[:-1]:
        if len(part.encode()) > longest:
            return f"folder name {part[:40]}... is longer than the {longest} bytes the file system allows"
    need = temp_name_length(path.name)
    if need > longest:
        return (
            f"file name {path.name[:40]}... is too long: writing it uses a temporary name of "
            f"{need} bytes, the file system allows {longest} (shorten it by {need - longest})"
        )
    return None


def _holder(fd: int) -> str:
    """What the lock file says of its holder ('pid N since T'), or '' when it says nothing."""
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return text.splitlines()[0] if text else ""


@contextlib.contextmanager
def exclusive(
    folder: str | Path,
    what: str,
    wait: bool = True,
    say: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold folder's lock (``folder/LOCK_NAME``, created with folder) for the block; other processes
    holding it are waited for (``say`` is told once) or, with ``wait=False``, refused with Busy.

    The lock is an advisory ``flock``: released by the system when the holder exits, however it ends,
    so a killed run never leaves a stale lock behind. The file records the holder's pid for messages.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            holder = f" ({holder})" if holder else ""
            if not wait:
                raise Busy(
                    f"{what} is in use by another mcalc run{holder}: wait for it to finish "
                    "(or give this run another folder)"
                ) from None
            if say is not None:
                say(f"waiting for another mcalc run{holder} to finish writing {what}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        yield lock
    finally:
        os.close(fd)  # releases the lock
