"""Section 1, thread-pool settings: the backbone under each of TensorFlow's intra-op / inter-op settings.

TensorFlow fixes both thread pools when its runtime starts, so each setting runs in its own process
(``python -m benchmarks.threads '<json>'``): it sets the pools before any op, builds the backbone as
the benchmark's main process does, and times the ceiling's convolution, the backbone's batch and the
ceiling again, in rounds; it prints its raw figures as one JSON line on stdout.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.config import BenchConfig
from benchmarks.markdown import table

ROOT = Path(__file__).resolve().parents[1]
#: The configuration a setting's process needs (the rest keeps its default).
CHILD_KEYS = (
    "image_size",
    "batch_size",
    "repeats",
    "conv_hw",
    "conv_channels",
    "conv_batch",
    "conv_kernel",
    "weights",
    "seed",
)
#: A setting's process is stopped after this long (a hung process must not hold the benchmark).
TIMEOUT_S = 1800


def label(intra: int, inter: int) -> str:
    """A setting as the report names it."""
    if (intra, inter) == (0, 0):
        return "TensorFlow's default (intra 0 / inter 0)"
    return f"intra {intra} / inter {inter}"


def measure_setting(params: dict) -> dict:
    """In a fresh process: set the thread pools, build the backbone, time it against the ceiling in rounds."""
    import tensorflow as tf

    intra, inter = int(params["intra"]), int(params["inter"])
    tf.config.threading.set_intra_op_parallelism_threads(intra)  # before any op runs
    tf.config.threading.set_inter_op_parallelism_threads(inter)

    from benchmarks.backbone import _random_batch, _timed, conv_ceiling_fn, count_flops
    from mcalc.learn.backbone import DEFAULT_VARIANT, inference_model
    from mcalc.learn.model import build_backbone
    from mcalc.learn.weights import resolve_weights

    cfg = replace(BenchConfig(), **params["config"])
    start = time.perf_counter()
    model = build_backbone(cfg.image_size, resolve_weights(cfg.weights), cfg.seed)
    fast = inference_model(model, DEFAULT_VARIANT)
    prepare_s = time.perf_counter() - start
    batch = _random_batch(cfg, cfg.batch_size)
    ceiling = conv_ceiling_fn(cfg)
    k, c, hw, n = cfg.conv_kernel, cfg.conv_channels, cfg.conv_hw, cfg.conv_batch
    first_call_s = _timed(lambda: fast.predict_on_batch(batch))  # traces the function
    ceiling()
    rounds = []
    for _ in range(cfg.repeats):
        times = {"ceiling": _timed(ceiling)}
        times["backbone"] = _timed(lambda: fast.predict_on_batch(batch))
        times["ceiling_after"] = _timed(ceiling)
        rounds.append(times)
    return {
        "intra": intra,
        "inter": inter,
        "reported": [
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        ],
        "variant": DEFAULT_VARIANT,
        "batch": cfg.batch_size,
        "flops_per_image": count_flops(model),
        "ceiling_flops_per_call": 2 * hw * hw * k * k * c * c * n,
        "prepare_s": prepare_s,
        "first_call_s": first_call_s,
        "rounds": rounds,
    }


def run_setting(intra: int, inter: int, cfg: BenchConfig) -> dict:
    """One setting in its own process; its raw figures, or ``ok: False`` and the error."""
    params = {
        "intra": intra,
        "inter": inter,
        "config": {k: getattr(cfg, k) for k in CHILD_KEYS},
    }
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    started = time.strftime("%H:%M:%S")
    start = time.perf_counter()
    command = [sys.executable, "-m", "benchmarks.threads", json.dumps(params)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -1, "", f"stopped after {exc.timeout:.0f} s"
    row = {"intra": intra, "inter": inter, "started": started}
    row["wall_s"] = time.perf_counter() - start
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if code == 0 and lines:
        return {**row, "ok": True, **json.loads(lines[-1])}
    tail = " | ".join((err or out).strip().splitlines()[-3:])
    return {**row, "ok": False, "error": f"exit {code}: {tail}"}


def bench_threads(cfg: BenchConfig) -> dict:
    """Every configured setting, one process each, one after the other."""
    return {"settings": [run_setting(intra, inter, cfg) for intra, inter in cfg.thread_settings]}


def summarize_setting(raw: dict) -> dict:
    """One setting's images/s and fraction of the ceiling (ideal / measured time), median and range over rounds.

    A round's ceiling is the faster of its two convolutions (before and after the backbone's batch).
    """
    rounds = raw["rounds"]
    rates = [raw["batch"] / r["backbone"] for r in rounds]
    ceilings = [
        raw["ceiling_flops_per_call"] / min(r["ceiling"], r["ceiling_after"]) for r in rounds
    ]
    fractions = [raw["flops_per_image"] * rate / c for rate, c in zip(rates, ceilings)]
    return {
        "setting": (raw["intra"], raw["inter"]),
        "images_per_s": statistics.median(rates),
        "fraction_of_ceiling": statistics.median(fractions),
        "fraction_range": (min(fractions), max(fractions)),
        "ceiling_flops_per_s": statistics.median(ceilings),
        "rounds": len(rounds),
    }


def summarize_threads(th: dict) -> list[dict]:
    """Summaries of the settings that ran, each with its images/s over the default setting's (None without it)."""
    out = [summarize_setting(s) for s in th["settings"] if s.get("ok")]
    default = next((s for s in out if s["setting"] == (0, 0)), None)
    for s in out:
        s["ratio_to_default"] = (
            s["images_per_s"] / default["images_per_s"] if default is not None else None
        )
    return out


def machine_wide(summary: dict, cores: int | None) -> bool:
    """Whether a setting's ceiling is the machine's: its intra-op pool is TensorFlow's default (0) or
    has every core (a smaller pool also measures its ceiling on fewer threads)."""
    intra = summary["setting"][0]
    return cores is None or intra == 0 or intra >= cores


def reading(summaries: list[dict], cores: int | None = None) -> str:
    """A sentence on which setting was fastest by fraction of the ceiling, and by how much over the
    default; settings with fewer intra-op threads than ``cores`` are set apart (their ceiling is not
    the machine's, so their fraction is not comparable)."""
    if not summaries:
        return "No setting ran."
    apart = [s for s in summaries if not machine_wide(s, cores)]
    text = _reading([s for s in summaries if machine_wide(s, cores)])
    for s in apart:
        ratio = s.get("ratio_to_default")
        text += (
            f" Not compared: {label(*s['setting'])} reached {s['fraction_of_ceiling']:.0%} of a "
            f"ceiling measured on {s['setting'][0]} intra-op thread(s), fewer than the machine's "
            f"{cores} cores, so its fraction is not the machine's"
            + (f"; in images/s it ran {ratio:.2f}× the default." if ratio is not None else ".")
        )
    return text


def _reading(summaries: list[dict]) -> str:
    """The reading over settings whose fractions are comparable."""
    if not summaries:
        return "No setting with the machine's ceiling ran."
    best = max(summaries, key=lambda s: s["fraction_of_ceiling"])
    default = next((s for s in summaries if s["setting"] == (0, 0)), None)
    text = (
        f"Fastest by % of the ceiling: {label(*best['setting'])}, at "
        f"{best['fraction_of_ceiling']:.0%} of its process's ceiling"
    )
    if default is None:
        return text + " (the default setting did not run, so there is no comparison with it)."
    if best is default:
        others = [s for s in summaries if s is not default]
        if not others:
            return text + " (the only setting run)."
        second = max(others, key=lambda s: s["fraction_of_ceiling"])
        return (
            text + f"; no other setting beat the default: the next, {label(*second['setting'])}, "
            f"reached {second['fraction_of_ceiling']:.0%} "
            f"({second['fraction_of_ceiling'] / best['fraction_of_ceiling']:.2f}× the default's)."
        )
    gain = best["fraction_of_ceiling"] / default["fraction_of_ceiling"]
    return (
        text + f", against the default's {default['fraction_of_ceiling']:.0%}: "
        f"{gain:.2f}× the default's fraction ({(gain - 1):+.0%}); "
        f"in images/s, taken in separate processes, {best['ratio_to_default']:.2f}× the default's."
    )


def render(results: dict) -> list[str]:
    """The thread-pool subsection of section 1 (nothing when it was not run)."""
    th = results.get("backbone", {}).get("threads")
    if not th:
        return []
    summaries = {s["setting"]: s for s in summarize_threads(th)}
    rows = []
    for raw in th["settings"]:
        name = label(raw["intra"], raw["inter"])
        s = summaries.get((raw["intra"], raw["inter"]))
        if s is None:
            rows.append([name, "—", f"failed: {raw.get('error', '')[:200]}", "—", raw["started"]])
            continue
        lo, hi = s["fraction_range"]
        ratio = s["ratio_to_default"]
        rows.append(
            [
                name,
                f"{s['images_per_s']:.2f}",
                f"{s['fraction_of_ceiling']:.0%} ({lo:.0%}–{hi:.0%})",
                "—" if ratio is None else f"{ratio:.2f}×",
                f"{raw['started']} ({raw['wall_s']:.0f} s)",
            ]
        )
    ok = [s for s in th["settings"] if s.get("ok")]
    detail = (
        f"`{ok[0]['variant']}`, batch {ok[0]['batch']}, {len(ok[0]['rounds'])} rounds" if ok else ""
    )
    lines = ["", "### Thread-pool settings", ""]
    lines += table(
        [
            "setting (`tf.config.threading`)",
            "images/s",
            "% of ceiling = ideal / measured time, median (range)",
            "images/s ÷ the default's (other process)",
            "process started (its wall time)",
        ],
        rows,
    )
    lines += [
        "",
        f"One process per setting{f' ({detail})' if detail else ''}: the pools are set before any op, the backbone built and "
        "made as in the main process, then each round times the ceiling's convolution, the backbone's "
        "batch and the ceiling again (a round's ceiling is the faster of the two). The processes ran "
        "one after the other, minutes apart, so their images/s are not comparable on a shared machine; "
        "the % of the ceiling, whose two parts are taken seconds apart within each process, is the "
        "comparable figure.",
        "",
        "Reading (generated from this run): "
        + reading(list(summaries.values()), (results.get("machine") or {}).get("cores")),
    ]
    return lines


if __name__ == "__main__":
    print(json.dumps(measure_setting(json.loads(sys.argv[1]))), flush=True)
