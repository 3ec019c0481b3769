"""A build's kernels take turns at the backbone (mcalc.learn.features.backbone_turn), and the build
names the lock for the kernels it starts (mcalc.run.runner)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcalc.learn import features as Fe

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from mcalc.learn.features import backbone_turn
with backbone_turn():
    start = time.time()
    time.sleep(float(sys.argv[1]))
    print(start, time.time())
"""


def _spans(env: dict[str, str], hold_s: float) -> list[tuple[float, float]]:
    """Two processes started together, each holding the backbone's turn for ``hold_s``: their spans."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLD, str(hold_s)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={"PATH": "", **env},
        )
        for _ in range(2)
    ]
    out = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return sorted(tuple(map(float, text.split())) for text in out)


def test_two_processes_never_hold_the_backbone_at_once(tmp_path):
    (_, first_end), (second_start, _) = _spans(
        {Fe.BACKBONE_LOCK_ENV: str(tmp_path / "turns.lock")}, 0.6
    )
    assert second_start >= first_end  # one after the other
    (_, first_end), (second_start, _) = _spans({}, 2.0)
    assert second_start < first_end, "without a build's lock nobody waits"


@pytest.mark.slow
@pytest.mark.kernel
def test_a_build_s_kernel_is_told_its_backbone_lock(tmp_path):
    """The kernel an execution starts has the lock beside the executed notebooks in its environment."""
    from jupyter_client.blocking import BlockingKernelClient
    from jupyter_core.utils import run_sync

    from mcalc.run import runner

    lock = str(tmp_path / runner.BACKBONE_LOCK)
    km = runner.kernel_manager(tmp_path / "kernel.log", tmp_path, {Fe.BACKBONE_LOCK_ENV: lock})
    run_sync(km.start_kernel)()
    seen: list[str] = []
    try:
        client = BlockingKernelClient(connection_file=km.connection_file)
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(
            f"import os; print(os.environ.get({Fe.BACKBONE_LOCK_ENV!r}))",
            timeout=60,
            output_hook=lambda msg: seen.append(msg["content"].get("text", "")),
        )
        client.stop_channels()
    finally:
        run_sync(km.shutdown_kernel)(now=True)
    assert reply["content"]["status"] == "ok"
    assert lock in "".join(seen)
