"""Tests for mcalc.records.cache: content keys, atomic writes, corruption detection, invalidation, resume."""

from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mcalc.records import cache as cache_mod
from mcalc.records.cache import FeatureCache, array_digest, cache_key, file_digest, load_or_compute


def fake_features(path: Path) -> np.ndarray:
    """A deterministic 'feature row' computed from a file's bytes."""
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8).astype(np.float32)
    return np.array([data.sum(), data.mean(), len(data), data[0]], dtype=np.float32)


def make_inputs(root: Path, n: int = 6) -> list[Path]:
    """Write ``n`` small distinct input files."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = root / f"img_{i}.bin"
        p.write_bytes(bytes([i + 1]) * (10 + i))
        paths.append(p)
    return paths


def run(
    paths: list[Path],
    cache: FeatureCache,
    calls: list[int],
    chunk: int = 2,
    fail_after: int | None = None,
):
    """Feature rows for ``paths`` through the cache, recording which indices were computed."""
    memo: dict = {}
    keys = [cache_key("test-v1", file_digest(p, memo)) for p in paths]

    def compute(missing: list[int]):
        for n_chunk, start in enumerate(range(0, len(missing), chunk)):
            if fail_after is not None and n_chunk >= fail_after:
                raise KeyboardInterrupt("simulated interruption")
            idx = missing[start : start + chunk]
            calls.extend(idx)
            yield idx, np.stack([fake_features(paths[i]) for i in idx])

    return load_or_compute(keys, compute, cache, row_shape=(4,), meta={"what": "test"})


def test_file_digest_and_keys(tmp_path: Path) -> None:
    a, b = make_inputs(tmp_path, 2)
    memo: dict = {}
    assert file_digest(a, memo) == file_digest(a) != file_digest(b)
    assert len(memo) == 1
    assert cache_key("x", "y") == cache_key("x", "y")
    assert cache_key("x", "y") != cache_key("y", "x")
    assert cache_key("ab", "c") != cache_key("a", "bc")


def test_save_load_roundtrip(tmp_path: Path) -> None:
    fc = FeatureCache(tmp_path / "c")
    key = cache_key("k")
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    fc.save(key, arr, {"n": 3})
    np.testing.assert_array_equal(fc.load(key), arr)
    assert fc.meta(key) == {"n": 3}
    assert fc.load(cache_key("other")) is None
    with pytest.raises(ValueError, match="hex"):
        fc.path_for("../../etc/passwd")


def test_atomic_write_keeps_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fc = FeatureCache(tmp_path)
    key = cache_key("atomic")
    fc.save(key, np.ones(4, dtype=np.float32))
    damaged = fc.path_for(key).read_bytes()[:20]
    fc.path_for(key).write_bytes(damaged)  # corrupt: the next save replaces it

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        fc.save(key, np.zeros(4, dtype=np.float32))
    monkeypatch.undo()
    assert fc.path_for(key).read_bytes() == damaged
    leftovers = [p for p in fc.path_for(key).parent.iterdir() if p.suffix == ".tmp"]
    assert leftovers == []
    fc.save(key, np.zeros(4, dtype=np.float32))
    np.testing.assert_array_equal(fc.load(key), np.zeros(4, dtype=np.float32))


def test_concurrent_writers_of_one_key_first_wins(tmp_path: Path) -> None:
    """Sweep tasks sharing the cache: of writers racing for one key, one complete file stays, no debris."""
    fc = FeatureCache(tmp_path)
    key = cache_key("shared")
    barrier = threading.Barrier(6)

    def writer(i: int) -> None:
        barrier.wait()
        fc.save(key, np.full(50_000, i, dtype=np.float32))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = fc.load(key, shape=(50_000,))
    assert first is not None and len(set(first.tolist())) == 1
    fc.save(key, np.full(50_000, -1, dtype=np.float32))  # a later writer leaves it alone
    np.testing.assert_array_equal(fc.load(key), first)
    assert [p.name for p in fc.path_for(key).parent.iterdir()] == [fc.path_for(key).name]


def test_interrupted_write_leaves_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fc = FeatureCache(tmp_path)
    key = cache_key("interrupted")
    real_savez = np.savez

    def savez_then_die(fh, **arrays):
        real_savez(fh, **arrays)
        fh.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod.np, "savez", savez_then_die)
    with pytest.raises(KeyboardInterrupt):
        fc.save(key, np.ones(4, dtype=np.float32))
    monkeypatch.undo()
    assert not fc.path_for(key).exists()
    assert list(fc.path_for(key).parent.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncate", "garbage", "bad_checksum", "wrong_shape", "empty"])
def test_corrupt_file_detected_and_rebuilt(tmp_path: Path, damage: str) -> None:
    paths = make_inputs(tmp_path / "in", 4)
    fc = FeatureCache(tmp_path / "cache")
    calls: list[int] = []
    first = run(paths, fc, calls)
    assert sorted(calls) == [0, 1, 2, 3]

    key = cache_key("test-v1", file_digest(paths[2]))
    target = fc.path_for(key)
    raw = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        target.write_bytes(b"not a zip" * 10)
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "bad_checksum":
        with zipfile.ZipFile(target) as zf:
            stale_checksum = zf.read("sha256.npy")
        # same shape, other values, the original (now stale) checksum
        with zipfile.ZipFile(target, "w") as zf:
            with zf.open("data.npy", "w") as fh:
                np.lib.format.write_array(fh, np.full(4, 9.0, dtype=np.float32))
            zf.writestr("sha256.npy", stale_checksum)
            with zf.open("meta.npy", "w") as fh:
                np.lib.format.write_array(fh, np.array("{}"))
    elif damage == "wrong_shape":
        arr = np.ones(5, dtype=np.float32)
        with open(target, "wb") as fh:
            np.savez(fh, data=arr, sha256=np.array(array_digest(arr)), meta=np.array("{}"))

    calls.clear()
    with pytest.warns(UserWarning, match="corrupt cache file"):
        second = run(paths, fc, calls)
    assert calls == [2]
    np.testing.assert_array_equal(second.array, first.array)
    # the rebuilt file is valid again: a third run computes nothing and warns nothing
    calls.clear()
    third = run(paths, fc, calls)
    assert calls == [] and third.n_cached == 4


def test_changing_one_input_invalidates_exactly_its_row(tmp_path: Path) -> None:
    paths = make_inputs(tmp_path / "in", 6)
    fc = FeatureCache(tmp_path / "cache")
    calls: list[int] = []
    before = run(paths, fc, calls).array
    calls.clear()
    paths[4].write_bytes(b"\x99" * 33)
    after = run(paths, fc, calls)
    assert calls == [4]
    assert after.n_cached == 5
    np.testing.assert_array_equal(np.delete(after.array, 4, axis=0), np.delete(before, 4, axis=0))
    np.testing.assert_array_equal(after.array[4], fake_features(paths[4]))
    assert not np.array_equal(after.array[4], before[4])


def test_resume_after_interruption(tmp_path: Path) -> None:
    paths = make_inputs(tmp_path / "in", 7)
    fc = FeatureCache(tmp_path / "cache")
    calls: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        run(paths, fc, calls, chunk=2, fail_after=2)
    assert calls == [0, 1, 2, 3]
    calls.clear()
    res = run(paths, fc, calls, chunk=2)
    assert calls == [4, 5, 6]
    expected = np.stack([fake_features(p) for p in paths])
    np.testing.assert_array_equal(res.array, expected)


def test_compute_contract_enforced(tmp_path: Path) -> None:
    fc = FeatureCache(tmp_path)
    keys = [cache_key(i) for i in range(3)]

    def incomplete(missing):
        yield missing[:1], np.zeros((1, 2), dtype=np.float32)

    with pytest.raises(ValueError, match="did not return rows"):
        load_or_compute(keys, incomplete, fc, row_shape=(2,))

    def wrong_shape(missing):
        yield missing, np.zeros((len(missing), 3), dtype=np.float32)

    with pytest.raises(ValueError, match="shape"):
        load_or_compute([cache_key("z")], wrong_shape, fc, row_shape=(2,))


def test_no_temp_files_left_after_many_saves(tmp_path: Path) -> None:
    fc = FeatureCache(tmp_path)
    for i in range(20):
        fc.save(cache_key(i), np.full(3, i, dtype=np.float32))
    all_files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(all_files) == 20 and all(p.suffix == ".npz" for p in all_files)
    assert not any(name.startswith(".") for _, _, files in os.walk(tmp_path) for name in files)


def test_cache_rows_follow_the_umask(tmp_path: Path) -> None:
    """A cache .npz gets 0666 less the umask, like every other output (not mkstemp's 0600)."""
    old = os.umask(0o022)
    try:
        path = FeatureCache(tmp_path).save(cache_key("mode"), np.ones(3, dtype=np.float32))
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644


def test_opening_the_cache_sweeps_a_killed_writers_temporary_file(tmp_path: Path) -> None:
    """A .tmp left by a killed writer (older than this process) goes when the cache is opened next;
    a live writer's stays."""
    import subprocess
    import sys

    from mcalc.records.fsio import process_start_time

    key = cache_key("killed")
    folder = tmp_path / key[:2]
    folder.mkdir()
    gone = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
        ).stdout
    )
    legacy = folder / f".{key[:16]}.abc123.tmp"  # the name mkstemp gave before
    dead = folder / f".{key}.npz.{gone}-0123456789ab.tmp"
    live = folder / f".{key}.npz.{os.getppid()}-0123456789ab.tmp"
    before = process_start_time() - 60
    for p in (legacy, dead, live):
        p.write_bytes(b"\0" * 1024)
        os.utime(p, (before, before))
    fc = FeatureCache(tmp_path)
    assert not legacy.exists() and not dead.exists() and live.exists()
    assert fc.load(key) is None


def test_non_finite_rows_are_returned_but_never_stored(tmp_path: Path) -> None:
    """A row that could not be computed (NaN) comes back as NaN and is computed again next time."""
    fc = FeatureCache(tmp_path)
    keys = [cache_key("good"), cache_key("bad")]

    def compute(missing):
        """One good row, one failed (NaN) row."""
        rows = np.array([[1.0, 2.0] if keys[i] == keys[0] else [np.nan, np.nan] for i in missing])
        yield missing, rows

    first = load_or_compute(keys, compute, fc, row_shape=(2,))
    assert np.isnan(first.array[1]).all() and first.computed == [0, 1]
    assert fc.load(keys[1]) is None and fc.load(keys[0]) is not None
    assert load_or_compute(keys, compute, fc, row_shape=(2,)).computed == [1]


def test_cached_table_computes_once_per_key_and_recovers_from_a_damaged_copy(tmp_path):
    """The same key reads the kept table back (no compute); another key computes; a damaged copy is
    computed again and replaced."""
    import pandas as pd

    from mcalc.records.cache import cached_table

    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame(
            {"x": [0.1 + 0.2, 1 / 3], "n": [3, 4], "note": ["a", None], "y": [float("nan"), 2.5]},
            index=pd.Index(["a", "b"], name="row"),
        )

    first = cached_table(tmp_path, "k1", compute)
    again = cached_table(tmp_path, "k1", compute)
    pd.testing.assert_frame_equal(first, again)  # exact: floats, index name
    assert len(calls) == 1 and (tmp_path / "k1.json").is_file()
    cached_table(tmp_path, "k2", compute)
    assert len(calls) == 2
    (tmp_path / "k1.json").write_text("{not json")
    with pytest.warns(UserWarning, match="unusable"):
        pd.testing.assert_frame_equal(cached_table(tmp_path, "k1", compute), first)
    assert len(calls) == 3
    pd.testing.assert_frame_equal(cached_table(tmp_path, "k1", compute), first)
    assert len(calls) == 3  # the replaced copy is read back


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_kept_table_with_a_non_finite_value_is_computed_again(tmp_path, token):
    """Issue 27.5: a kept measurement table edited to hold NaN / Infinity (valid to Python's json) is
    not read back (it would reach the book as inf or an empty cell): computed again, with a warning."""
    import pandas as pd

    from mcalc.records.cache import cached_table

    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"x": [0.25, 0.5]}, index=pd.Index(["a", "b"], name="row"))

    first = cached_table(tmp_path, "k", compute)
    path = tmp_path / "k.json"
    path.write_text(path.read_text().replace("0.25", token))
    with pytest.warns(UserWarning, match=rf"kept table {path} unusable .*non-finite"):
        again = cached_table(tmp_path, "k", compute)
    pd.testing.assert_frame_equal(again, first)
    assert len(calls) == 2 and token not in path.read_text()


def test_a_kept_table_edited_to_other_finite_numbers_fails_its_digest(tmp_path):
    """A kept table carries the digest of what was written: an edited number is noticed, not shown."""
    import pandas as pd

    from mcalc.records.cache import cached_table

    table = pd.DataFrame({"x": [0.25, 0.5]})
    cached_table(tmp_path, "k", lambda: table)
    path = tmp_path / "k.json"
    path.write_text(path.read_text().replace("0.25", "0.95"))
    with pytest.warns(UserWarning, match="does not match its digest"):
        pd.testing.assert_frame_equal(cached_table(tmp_path, "k", lambda: table), table)


def test_a_computed_table_with_inf_is_returned_but_not_kept(tmp_path):
    """A non-finite number computed is shown once and not kept (the next build computes it again)."""
    import pandas as pd

    from mcalc.records.cache import cached_table

    table = pd.DataFrame({"x": [float("inf"), 0.5]})
    with pytest.warns(UserWarning, match="not kept"):
        out = cached_table(tmp_path, "k", lambda: table)
    pd.testing.assert_frame_equal(out, table)
    assert not (tmp_path / "k.json").exists()
