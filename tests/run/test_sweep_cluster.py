"""A sweep on a real Dask cluster: a scheduler and workers started with the `dask` command as separate
processes, each worker in its own empty folder and unable to see the client's folder, one worker
killed mid-sweep, and the GPU resource routing fine-tuning points (on CPU workers declaring it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mcalc.records import sweeps
from mcalc.run import sweep
from mcalc.run.grid import GridSpec
from mcalc.run.profiles import get_profile
from tests.run.helpers import FAKE_TEMPLATE

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

DASK = Path(sys.executable).with_name("dask")
#: What differs between two runs of one point, whatever runs it: where, how long, and the seal over them.
WHERE = ("host", "worker", "kernel", "elapsed_s", "digest")


def _isolation() -> list[str] | None:
    """The command prefix that gives a worker a private mount namespace (root: unshare -m; else a user
    namespace too), or None where the system refuses it."""
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "-m", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix.insert(1, "-r")
    probe = subprocess.run(
        [*prefix, "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True, timeout=30
    )
    return prefix if probe.returncode == 0 else None


ISOLATION = _isolation()


class Cluster:
    """A scheduler and workers as separate processes; every process tree it started is ended at close."""

    def __init__(self, base: Path, hidden: Path) -> None:
        self.base, self.hidden = base, hidden
        self.procs: dict[str, subprocess.Popen] = {}
        self.scheduler_file = base / "scheduler.json"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        self.env = {k: v for k, v in env.items() if not k.startswith("DASK_")}

    def start_scheduler(self) -> str:
        """Start `dask scheduler` on a free local port; its address."""
        folder = self.base / "scheduler"
        folder.mkdir()
        self.procs["scheduler"] = subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
            + ["--scheduler-file", str(self.scheduler_file)],
            cwd=folder,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "log", "wb"),  # noqa: SIM115 (kept open for the process)
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not self.scheduler_file.is_file():
            assert time.monotonic() < deadline, (folder / "log").read_text()
            time.sleep(0.2)
        time.sleep(0.2)
        return json.loads(self.scheduler_file.read_text())["address"]

    def start_worker(self, name: str, resources: str = "") -> Path:
        """Start `dask worker NAME` in its own empty folder, a private tmpfs over the hidden folder; that folder."""
        folder = self.base / f"worker-{name}"
        folder.mkdir()
        command = [str(DASK), "worker", "--scheduler-file", str(self.scheduler_file)]
        command += ["--name", name, "--nthreads", "1", "--nworkers", "1", "--no-dashboard"]
        command += ["--local-directory", str(folder)]
        command += ["--resources", resources] if resources else []
        script = (
            f"mount -t tmpfs -o strictatime tmpfs '{self.hidden}' && cd '{folder}' && "
            f"exec {' '.join(command)}"
        )
        self.procs[name] = subprocess.Popen(
            [*ISOLATION, "sh", "-c", script],
            cwd=folder,
            env={**self.env, "MCALC_TEST_WORKER": name},
            stdout=subprocess.DEVNULL,
            stderr=open(self.base / f"worker-{name}.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        return folder

    def wait_for_workers(self, client, n: int) -> None:
        """Until n workers are connected."""
        client.wait_for_workers(n, timeout=90)

    def hidden_view(self, name: str) -> Path:
        """The hidden folder as the worker's processes see it (their mount namespace)."""
        return Path(f"/proc/{self.procs[name].pid}/root") / self.hidden.relative_to("/")

    def kill(self, name: str) -> None:
        """SIGKILL a worker's whole process tree (its nanny, worker process and notebook kernels)."""
        root = psutil.Process(self.procs[name].pid)
        tree = [root, *root.children(recursive=True)]
        for proc in tree:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=30)

    def close(self) -> None:
        """End every process this cluster started."""
        for name in list(self.procs):
            if self.procs[name].poll() is None:
                self.kill(name)


def _untouched(view: Path, atime: float) -> None:
    """Nothing was created under the hidden folder, and nothing listed it (strictatime: a read updates atime)."""
    assert view.stat().st_atime == atime, "a worker listed the client's folder"
    assert list(view.iterdir()) == [], "a worker wrote under the client's folder"


def _comparable(record: dict) -> dict:
    """A record without where and how long it ran."""
    return {k: v for k, v in record.items() if k not in WHERE}


@pytest.mark.skipif(ISOLATION is None, reason="no private mount namespace (unshare -m) here")
def test_a_sweep_on_a_dask_cluster_without_the_clients_files(tmp_path):
    """Scheduler + 2 workers (`dask` commands, own folders, the client's folder hidden under a tmpfs):
    one worker killed mid-sweep; records equal a serial run's; the killed point re-ran once; points
    asking for a GPU ran only on workers declaring one; no worker opened anything in the client's folder."""
    from distributed import Client

    client_dir, signals = tmp_path / "client", tmp_path / "signals"
    notebooks = client_dir / "notebooks"
    notebooks.mkdir(parents=True)
    signals.mkdir()
    (notebooks / "fake.py").write_text(FAKE_TEMPLATE)
    profile = get_profile("ci", results_dir=str(client_dir / "results"))
    Path(profile.results_dir).mkdir()
    (Path(profile.results_dir) / "data.txt").write_text("the client's data")
    log, hold = signals / "executions.log", signals / "hold"
    spec = GridSpec.from_dict(
        {
            "name": "cluster",
            "template": "fake",
            "inputs": ["data.txt"],
            "fixed": {"log": str(log), "read": "data.txt"},
            "points": [
                {"x": 0, "train_backbone": "top", "hold": str(hold)},  # killed once, then re-run
                {"x": 1, "train_backbone": "top"},
                {"x": 2, "train_backbone": "all"},
                {"x": 3},
                {"x": 4},
            ],
        }
    )
    cluster = Cluster(tmp_path / "cluster", client_dir)
    cluster.base.mkdir()
    try:
        address = cluster.start_scheduler()
        cluster.start_worker("cpu")
        cluster.start_worker("gpu", resources="GPU=1")
        with Client(address, timeout="60s") as client:
            cluster.wait_for_workers(client, 2)
        atimes = {n: cluster.hidden_view(n).stat().st_atime for n in ("cpu", "gpu")}

        def kill_the_held_worker() -> None:
            """Once the held point started, check its worker saw nothing of ours, kill it, start another GPU worker."""
            deadline = time.monotonic() + 120
            while not hold.is_file() or not hold.read_text():
                assert time.monotonic() < deadline, "the held point never started"
                time.sleep(0.2)
            held_by = hold.read_text()
            assert held_by == "gpu"  # a GPU point: only the worker declaring the resource takes it
            _untouched(cluster.hidden_view(held_by), atimes[held_by])
            cluster.kill(held_by)
            cluster.start_worker("gpu2", resources="GPU=1")

        import threading

        killer = threading.Thread(target=kill_the_held_worker)
        killer.start()
        summary = sweep.run_sweep(
            spec, profile, address, progress=False, notebook_dir=notebooks, dashboard=False
        )
        killer.join()
        assert not summary.failed and len(summary.ran) == 5
        view = cluster.hidden_view("gpu2")
        _untouched(cluster.hidden_view("cpu"), atimes["cpu"])
        assert list(view.iterdir()) == []
    finally:
        cluster.close()

    ran = [line.split() for line in log.read_text().splitlines()]  # x, worker, kernel pid
    assert sorted(int(x) for x, _, _ in ran) == [0, 0, 1, 2, 3, 4]  # the killed point re-ran once
    assert {w for x, w, _ in ran if int(x) <= 2} <= {
        "gpu",
        "gpu2",
    }  # fine-tuning points: GPU workers
    assert ("0", "gpu") in {(x, w) for x, w, _ in ran} and ("0", "gpu2") in {
        (x, w) for x, w, _ in ran
    }
    for worker in ("cpu", "gpu2"):  # warm kernels: a worker's points share its one kernel
        assert len({pid for _, w, pid in ran if w == worker}) == 1
    done, missing = sweeps.load_sweep(profile.results_dir, "cluster")
    assert not missing and [r["axes"]["x"] for r in done] == [0, 1, 2, 3, 4]
    assert {r["worker"] for r in done} <= {"cpu", "gpu", "gpu2"}
    assert all(r["run"]["data"] == "the client's data" for r in done)  # the inputs were shipped
    out = sweeps.sweep_dir(profile.results_dir, "cluster")
    for record in done:  # what the point produced came back and was written here
        assert (out / record["notebook"]).is_file()
        assert (out / "runs" / f"{record['key']}.json").is_file()
        figure = out / "files" / record["key"] / "figure.txt"
        assert figure.read_text() == f"figure of point {record['axes']['x']}"

    serial_profile = get_profile("ci", results_dir=str(tmp_path / "serial"))
    Path(serial_profile.results_dir).mkdir()
    shutil.copy(Path(profile.results_dir) / "data.txt", serial_profile.results_dir)
    serial = sweep.run_sweep(spec, serial_profile, "serial", progress=False, notebook_dir=notebooks)
    assert sorted(serial.ran) == sorted(summary.ran)  # the same keys: the same content
    alone, _ = sweeps.load_sweep(serial_profile.results_dir, "cluster")
    assert [_comparable(r) for r in alone] == [_comparable(r) for r in done]
