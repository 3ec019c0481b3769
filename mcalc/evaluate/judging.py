"""The rules that judge a claim of the analysis plan (:mod:`mcalc.evaluate.plan`), one function each.

:func:`judge_equivalence` (value claims, two one-sided tests), :func:`judge_superiority` (an
advantage of a claimed size, against each comparator), :func:`judge_optimizer` (level and spread,
like with like; the spread by :func:`judge_spread`), :func:`judge_all_of` (a claim of several
numbers: intersection–union), :func:`judge_counts`, :func:`judge_formula`, :func:`judge_step_ratio`
and :func:`judge_attribution` (the data-free claims). Each returns a :class:`Judgement`: one of the
four :data:`OUTCOMES`, which way, and why:

* **reproduced** — the evidence meets the plan's test (for a value: our 90% CI inside the paper's
  value ± δ, or beyond it in the direction the plan counts as better);
* **not reproduced** — the evidence excludes the claim (for a value: our 90% CI entirely below
  paper − δ, say, with the direction said);
* **inconclusive** — neither, saying which way it could still go; or the evidence the rule needs is
  missing (absence of evidence is not refutation);
* **not testable here** — an image claim judged on the phantom, a random backbone or another task,
  whatever its numbers; or a source this build cannot read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import integrate
from scipy.stats import kruskal, norm

from mcalc import paper
from mcalc.evaluate import plan
from mcalc.evaluate.power import ALPHA

__all__ = [
    "REPRODUCED",
    "NOT_REPRODUCED",
    "INCONCLUSIVE",
    "NOT_TESTABLE",
    "OUTCOMES",
    "TOST_CONFIDENCE",
    "CLAIM_METRIC",
    "Judgement",
    "judge_equivalence",
    "judge_all_of",
    "judge_superiority",
    "expected_range",
    "judge_spread",
    "judge_optimizer",
    "judge_counts",
    "judge_formula",
    "weight_travel",
    "judge_step_ratio",
    "judge_attribution",
]

REPRODUCED = "reproduced"


NOT_REPRODUCED = "not reproduced"


INCONCLUSIVE = "inconclusive"


NOT_TESTABLE = "not testable here"


#: The four outcomes of a verdict.
OUTCOMES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)


#: The confidence of the intervals of an equivalence test at α (two one-sided tests).
TOST_CONFIDENCE = 1 - 2 * ALPHA


#: The metric of the "beats the classical baselines" and "optimizer" claims (the paper's own).
CLAIM_METRIC = "accuracy"


@dataclass(frozen=True)
class Judgement:
    """An outcome, which way (lower, higher, could be lower, …; empty when none), and why."""

    outcome: str
    qualifier: str
    detail: str

    @property
    def label(self) -> str:
        """'not reproduced (lower)', or the outcome alone."""
        return f"{self.outcome} ({self.qualifier})" if self.qualifier else self.outcome


def judge_equivalence(
    paper_value: float | tuple[float, float],
    value: float,
    ci: tuple[float, float],
    delta: float,
    better: str = plan.HIGHER,
) -> Judgement:
    """Two one-sided tests: ``ci`` (a 90% CI) against the paper's value (or range) ± ``delta``.

    Inside the band: reproduced. Entirely below: not reproduced (lower). Entirely above: reproduced
    (higher) when the plan counts higher as better, else not reproduced (higher). Overlapping an
    edge: inconclusive, saying which way it could go — except that a CI reaching only above the band
    when higher is better is reproduced (at least as good as the paper's within δ).
    """
    lo, hi = ci
    p_lo, p_hi = (paper_value, paper_value) if np.isscalar(paper_value) else paper_value
    paper_text = f"{p_lo:g}" if p_lo == p_hi else f"{p_lo:g}–{p_hi:g}"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return Judgement(
            INCONCLUSIVE, "no interval", f"ours {value:.3f} has no confidence interval"
        )
    band = (p_lo - delta, p_hi + delta)
    ours = (
        f"ours {value:.3f}, 90% CI [{lo:.3f}, {hi:.3f}], against the paper's {paper_text} ± {delta:g} "
        f"= [{band[0]:.3f}, {band[1]:.3f}]"
    )
    higher_better = better == plan.HIGHER
    if lo >= band[0] and hi <= band[1]:
        return Judgement(REPRODUCED, f"within ±{delta:g}", f"{ours}: inside")
    if hi < band[0]:
        return Judgement(NOT_REPRODUCED, "lower", f"{ours}: entirely below")
    if lo > band[1]:
        outcome = REPRODUCED if higher_better else NOT_REPRODUCED
        return Judgement(outcome, "higher", f"{ours}: entirely above (better than the paper's)")
    if lo >= band[0]:
        if higher_better:
            return Judgement(
                REPRODUCED,
                "at least as good",
                f"{ours}: not below the band, and may be above it (better)",
            )
        return Judgement(INCONCLUSIVE, "could be higher", f"{ours}: reaches above the band")
    if hi <= band[1]:
        return Judgement(
            INCONCLUSIVE, "could be lower", f"{ours}: reaches below the band (could be worse)"
        )
    return Judgement(
        INCONCLUSIVE, "could be lower or higher", f"{ours}: wider than the band on both sides"
    )


def judge_all_of(parts: dict[str, Judgement | None]) -> Judgement:
    """A claim of several numbers, each of which must hold (intersection–union: no correction).

    Any part not reproduced refutes the claim; otherwise a missing part (None) or an inconclusive
    one leaves it inconclusive; all reproduced reproduce it.
    """
    texts = [
        f"{name}: {'missing' if j is None else j.label + ' — ' + j.detail}"
        for name, j in parts.items()
    ]
    detail = "; ".join(texts) if texts else "nothing to judge"
    found = [j for j in parts.values() if j is not None]
    failed = [name for name, j in parts.items() if j is not None and j.outcome == NOT_REPRODUCED]
    missing = [name for name, j in parts.items() if j is None]
    if failed:
        return Judgement(NOT_REPRODUCED, f"{', '.join(failed)}", detail)
    if missing:
        return Judgement(INCONCLUSIVE, f"{', '.join(missing)} missing", detail)
    if found and all(j.outcome == REPRODUCED for j in found):
        return Judgement(REPRODUCED, "", detail)
    if found and all(j.outcome == NOT_TESTABLE for j in found):
        return Judgement(NOT_TESTABLE, "", detail)
    open_ = [name for name, j in parts.items() if j is not None and j.outcome != REPRODUCED]
    return Judgement(INCONCLUSIVE, f"{', '.join(open_)} open", detail)


def judge_superiority(
    differences: dict[str, pd.Series], claimed: dict[str, float] | None = None
) -> Judgement:
    """ "a beats every comparator by the claimed difference", from paired differences (a − comparator, 95% CI).

    Per comparator: the CI below 0 → not reproduced (the comparator better); below the claimed size
    → not reproduced (smaller than claimed); above 0 (holding the claimed size, or above it) →
    reproduced; holding both 0 and the claimed size → inconclusive. All comparators must hold.
    """
    claimed = claimed or {}
    parts = {}
    for name, d in differences.items():
        lo, hi = float(d["ci_low"]), float(d["ci_high"])
        c = float(claimed.get(name, 0.0))
        text = f"{d['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}] (p = {d['p_value']:.3f}), claimed {c:+.2f}"
        if not (np.isfinite(lo) and np.isfinite(hi)):
            parts[name] = Judgement(INCONCLUSIVE, "no interval", text)
        elif hi < 0:
            parts[name] = Judgement(NOT_REPRODUCED, "baseline better", text)
        elif hi < c:
            parts[name] = Judgement(
                NOT_REPRODUCED,
                "smaller than claimed",
                text
                + (
                    ": a positive difference is supported, the claimed size is excluded"
                    if lo > 0
                    else ": the claimed size is excluded"
                ),
            )
        elif lo > 0:
            size = "larger than claimed" if lo > c else "the claimed size inside"
            parts[name] = Judgement(REPRODUCED, size, text)
        else:
            parts[name] = Judgement(
                INCONCLUSIVE, "holds 0 and the claim", text + ": both 0 and the claim inside"
            )
    if not parts:
        return Judgement(INCONCLUSIVE, "no comparison", "no comparison")
    return judge_all_of({f"vs {k}": v for k, v in parts.items()})


def expected_range(k: int) -> float:
    """Expected range of ``k`` independent standard normal draws (d2 of quality control: 2.059 for k = 4)."""
    if k < 2:
        return 0.0

    def f(x: float) -> float:
        c = norm.cdf(x)
        return 1 - c**k - (1 - c) ** k

    return float(integrate.quad(f, -np.inf, np.inf)[0])


def judge_spread(
    single_runs: dict[str, float], seed_runs: pd.DataFrame | None, metric: str = CLAIM_METRIC
) -> Judgement:
    """Is the range of the single runs (one per optimizer) larger than the seed alone gives? Like with like.

    The range of k single runs is set against the range k single runs of *one* optimizer would
    show from the seed alone: the seed SD (pooled within optimizers, chapter 7) times the expected
    range of k normal draws. Reproduced when it is no larger and a Kruskal–Wallis test on the seed
    runs finds no optimizer effect (p ≥ α); not reproduced when both say the opposite.
    """
    k = len(single_runs)
    if k < 2:
        return Judgement(INCONCLUSIVE, "too few runs", "needs at least two optimizers' runs")
    spread = max(single_runs.values()) - min(single_runs.values())
    runs = f"range of the {k} single runs {spread:.3f} (" + ", ".join(
        f"{n} {v:.3f}" for n, v in single_runs.items()
    )
    if seed_runs is None or seed_runs.empty:
        return Judgement(
            INCONCLUSIVE, "no seed runs", runs + "); chapter 7's seed runs are not in the results"
        )
    by_opt = [g[metric].to_numpy(dtype=float) for _, g in seed_runs.groupby("optimizer")]
    if len(by_opt) < 2 or min(len(g) for g in by_opt) < 2:
        return Judgement(
            INCONCLUSIVE,
            "too few seeds",
            runs + "); chapter 7 needs two or more seeds of two or more optimizers",
        )
    seed_sd = float(np.sqrt(np.mean([np.var(g, ddof=1) for g in by_opt])))
    noise_range = seed_sd * expected_range(k)
    pooled = np.concatenate(by_opt)
    p = float(kruskal(*by_opt).pvalue) if np.ptp(pooled) > 0 else 1.0
    detail = (
        f"{runs}) against {noise_range:.3f}, the range {k} single runs of one optimizer show from "
        f"the seed alone (seed SD {seed_sd:.3f} × {expected_range(k):.3f}); Kruskal–Wallis across "
        f"optimizers on the seed runs p = {p:.3f}"
    )
    small, no_effect = spread <= noise_range, p >= ALPHA
    if small and no_effect:
        return Judgement(REPRODUCED, "", detail)
    if not small and not no_effect:
        return Judgement(NOT_REPRODUCED, "optimizers differ", detail)
    return Judgement(INCONCLUSIVE, "range and test disagree", detail)


def judge_optimizer(
    levels: dict[str, tuple[float, tuple[float, float]]],
    seed_runs: pd.DataFrame | None,
    paper_range: tuple[float, float] = (0.92, 0.94),
    delta: float = plan.VALUE_MARGIN,
) -> Judgement:
    """ "Performs efficiently irrespective of the optimizer": the level of each AND the spread.

    ``levels`` maps each optimizer to (accuracy, 90% CI): each must lie in the paper's range ± δ
    (:func:`judge_equivalence`, all four by :func:`judge_all_of`); the spread is :func:`judge_spread`.
    Four optimizers failing equally are not a reproduction.
    """
    level = judge_all_of(
        {n: judge_equivalence(paper_range, v, ci, delta) for n, (v, ci) in levels.items()}
    )
    spread = judge_spread({n: v for n, (v, _) in levels.items()}, seed_runs)
    parts = {"level": level, "spread": spread}
    combined = judge_all_of(parts)
    qualifier = ""
    if level.outcome == NOT_REPRODUCED:
        qualifier = "level " + (level.qualifier and "not met by " + level.qualifier)
    elif spread.outcome == NOT_REPRODUCED:
        qualifier = "the optimizers differ"
    elif combined.outcome == INCONCLUSIVE:
        qualifier = combined.qualifier
    return Judgement(combined.outcome, qualifier, combined.detail)


def judge_counts(ours: dict[str, int], printed: dict[str, int], tolerance: int = 1) -> Judgement:
    """Counts per class against the printed ones: every class within ``tolerance``."""
    diffs = {k: int(ours[k]) - int(printed[k]) for k in printed}
    detail = "; ".join(
        f"{k}: official {ours[k]}, paper {printed[k]} ({d:+d})" for k, d in diffs.items()
    )
    off = [k for k, d in diffs.items() if abs(d) > tolerance]
    if off:
        return Judgement(NOT_REPRODUCED, f"{len(off)} of {len(diffs)} classes differ", detail)
    return Judgement(REPRODUCED, f"within {tolerance} ROI", detail)


def judge_formula(printed: pd.Series, correct: pd.Series, name: str) -> Judgement:
    """A printed formula against the definition, class by class on one confusion matrix."""
    diff = (printed - correct).abs()
    detail = "; ".join(
        f"{c}: printed {p:.3f}, correct {q:.3f}" for c, p, q in zip(printed.index, printed, correct)
    )
    if (diff > 1e-12).any():
        return Judgement(NOT_REPRODUCED, "wrong as printed", f"{name} — {detail}")
    return Judgement(REPRODUCED, "", f"{name} — {detail}")


def weight_travel(optimizer: str, steps: int, lr: float, grad: float = 1.0) -> float:
    """How far one weight moves in ``steps`` under a constant gradient, by Keras' update rule and the paper's settings."""
    if optimizer == "adam":  # β1 0.9, β2 0.999, ε 1e-7: bias-corrected steps of about lr each
        b1, b2, eps = 0.9, 0.999, 1e-7
        m = v = x = 0.0
        for t in range(1, steps + 1):
            m, v = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad**2
            x += lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        return x
    if optimizer == "adadelta":  # ρ 0.95, ε 1e-7
        rho, eps = 0.95, 1e-7
        acc_g = acc_d = x = 0.0
        for _ in range(steps):
            acc_g = rho * acc_g + (1 - rho) * grad**2
            d = math.sqrt(acc_d + eps) / math.sqrt(acc_g + eps) * grad
            acc_d = rho * acc_d + (1 - rho) * d**2
            x += lr * d
        return x
    raise ValueError(f"weight_travel knows adam and adadelta, not {optimizer!r}")


def judge_step_ratio(ratio: float, margin: float = plan.STEP_RATIO_MARGIN) -> Judgement:
    """ADADelta's weight travel ÷ Adam's against a factor ``margin``: below 1/margin, it cannot train alike."""
    detail = f"ADADelta moves a weight {ratio:.1e} times as far as Adam (1/{1 / ratio:,.0f})"
    if ratio < 1 / margin:
        return Judgement(NOT_REPRODUCED, "lower", f"{detail}: more than {margin:g} times less far")
    return Judgement(REPRODUCED, "", f"{detail}: within a factor of {margin:g}")


def _number_in(text: str, value: float) -> bool:
    """Whether ``value`` appears in ``text`` as a fraction (0.95) or a percentage (95, 95%)."""
    forms = {f"{value:g}", f"{value:.2f}", f"{value * 100:g}"}
    return any(re.search(rf"(?<![\d.]){re.escape(f)}(?![\d])", text) for f in forms)


def judge_attribution(source: paper.Source) -> Judgement:
    """The numbers Table 5 attributes to a study, against the source's words read here."""
    numbers = {"accuracy": source.accuracy, "AUC": source.auc, "sensitivity": source.sensitivity}
    if not source.quote:
        return Judgement(
            NOT_TESTABLE,
            "source not read",
            f"the source's text could not be read here ({source.where})",
        )
    parts = {}
    for name, v in numbers.items():
        if v is None:
            continue
        if _number_in(source.quote, v):
            parts[name] = Judgement(REPRODUCED, "", f"{v:g} is in the source's words")
        else:
            parts[name] = Judgement(
                INCONCLUSIVE,
                "not in the text read",
                f"{v:g} is not in {source.where} (the full text was not read)",
            )
    j = judge_all_of(parts)
    return Judgement(j.outcome, j.qualifier, j.detail)
