"""What the tests of mcalc.run share: the repository's templates, and a fake template for sweeps.

(Not a conftest.py: the tests elsewhere import ``conftest``, which must stay ``tests/conftest.py``.)
"""

from __future__ import annotations

from pathlib import Path

import jupytext

from mcalc.run.grid import GridSpec
from mcalc.run.profiles import Profile, get_profile
from mcalc.run.runner import NOTEBOOK_DIR

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "notebooks").glob("*.py"))

# A template as small as a notebook gets: it logs each execution, can kill its worker once or fail,
# and saves a run record the way 03_optimizer does.
FAKE_TEMPLATE = """# %% tags=["parameters"]
results_dir = "results"
x = 0
fail = False
kill = ""
log = ""
read = ""
hold = ""
train_backbone = "none"
run_record = ""

# %%
import json, os, pathlib, signal, time

with open(log or pathlib.Path(results_dir) / "executions.log", "a") as fh:
    fh.write(f"{x} {os.environ.get('MCALC_TEST_WORKER', '-')} {os.getpid()}\\n")
if hold and not pathlib.Path(hold).exists():  # the first execution waits there, to be killed
    pathlib.Path(hold).write_text(os.environ.get("MCALC_TEST_WORKER", "-"))
    time.sleep(300)
if kill and not pathlib.Path(kill).exists():
    pathlib.Path(kill).write_text("killed once")
    os.kill(os.getppid(), signal.SIGKILL)
    os._exit(1)
if fail:
    raise ValueError(f"point {x} fails on purpose")
metrics = {"accuracy": x / 10, "auc_pooled": 0.5, "sensitivity_at_spec80": 0.1, "loss_kl": 1.0}
metrics["ci"] = {"accuracy": [x / 10 - 0.05, x / 10 + 0.05]}
data = (pathlib.Path(results_dir) / read).read_text() if read else None
pathlib.Path("figure.txt").write_text(f"figure of point {x}")
pathlib.Path(run_record).write_text(json.dumps({"test": metrics, "data": data}))
"""


def make_fake(tmp_path: Path) -> tuple[Path, Profile]:
    """(notebook folder holding the fake template, a profile whose results folder is in tmp_path)."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "fake.py").write_text(FAKE_TEMPLATE)
    profile = get_profile("ci", results_dir=str(tmp_path / "results"))
    Path(profile.results_dir).mkdir()
    return notebooks, profile


def fake_spec(**kw) -> GridSpec:
    """A grid of the fake template (no study inputs)."""
    return GridSpec.from_dict({"name": "fake", "template": "fake", "inputs": [], **kw})


def fake_log(profile) -> str:
    """Where the fake template logs its executions: beside the results folder, so workers without it reach it."""
    return str(Path(profile.results_dir).parent / "executions.log")


def fake_executions(profile) -> list[int]:
    """The x of every execution of the fake template, in order."""
    log = Path(fake_log(profile))
    return [int(line.split()[0]) for line in log.read_text().splitlines()] if log.exists() else []


def parameters_cell(path: Path):
    """The cell tagged 'parameters' of a jupytext template."""
    nb = jupytext.read(path)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} must have exactly one cell tagged 'parameters'"
    return cells[0]


def template_defaults(template: str) -> dict:
    """The parameters a template declares, with their defaults."""
    declared = {}
    exec(parameters_cell(ROOT / NOTEBOOK_DIR / f"{template}.py").source, {}, declared)
    return declared
