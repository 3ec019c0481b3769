"""Tests for mcalc.evaluate.prose: verdict summaries, the bottom line and the sentences of chapters 6 and 7,
each following the numbers it is generated from."""

from __future__ import annotations

import pandas as pd
from test_judging import seed_frame
from test_verdicts import synthetic_results

from mcalc.evaluate import judging as J
from mcalc.evaluate import plan
from mcalc.evaluate import prose as P
from mcalc.evaluate import verdicts as V


def test_the_summary_is_counted_from_the_displayed_table() -> None:
    table = V.verdict_table(synthetic_results("phantom", "imagenet", 2.0))
    summary = P.verdict_summary(table)
    n_image = int((table["kind"] == plan.IMAGE).sum())
    assert f"of the {n_image} image claims, {n_image} not testable here" in summary
    changed = table.copy()
    changed.iloc[0, changed.columns.get_loc("verdict")] = J.INCONCLUSIVE
    assert P.verdict_summary(changed) != summary


def test_leakage_sentence_follows_the_numbers() -> None:
    def repeats(memo_gain: float, head_gain: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "scheme": ["roi_level", "patient_grouped"],
                "accuracy": [0.6 + head_gain, 0.6],
                "1-NN accuracy on the features": [0.5 + memo_gain, 0.5],
            }
        )

    assert P.leakage_sentence(repeats(0.10, 0.02)).startswith("The memoriser gains more")
    assert P.leakage_sentence(repeats(0.01, 0.05)).startswith("The frozen head gains more")
    assert "+0.050" in P.leakage_sentence(repeats(0.01, 0.05))


def test_leakage_gap_sentence_follows_the_numbers() -> None:
    s = P.leakage_gap_sentence(0.71, 0.64, (0.07, 0.03, 0.11), 10)
    assert s.startswith("On the same pooled data, a ROI-level split gives the head a higher mean")
    assert "0.710 against 0.640 (10 split seeds each), a difference of +0.070" in s
    assert s.endswith("(95% CI over the split seeds +0.030 to +0.110, which excludes zero).")
    s = P.leakage_gap_sentence(0.60, 0.62, (-0.02, -0.05, 0.01), 3)
    assert "a lower mean test accuracy than" in s and "which includes zero" in s
    assert "the same mean test accuracy as" in P.leakage_gap_sentence(
        0.6, 0.6, (0.0, -0.01, 0.01), 2
    )
    assert "one split seed: no interval" in P.leakage_gap_sentence(
        0.7, 0.6, (0.1, float("nan"), float("nan")), 1
    )
    assert "needed" in P.leakage_gap_sentence(float("nan"), 0.6, (float("nan"),) * 3, 0)


def test_seed_sentence_compares_like_with_like_and_follows_the_test() -> None:
    same = seed_frame(dict.fromkeys(("A", "B", "C", "D"), 0.7), spread=0.05, n=5)
    s = P.seed_sentence(same)
    assert "no larger than" in s and "finds no optimizer effect" in s
    apart = seed_frame({"A": 0.6, "B": 0.7, "C": 0.8, "D": 0.9}, spread=0.01, n=5)
    s = P.seed_sentence(apart)
    assert "larger than the seed's" in s and "finds an optimizer effect" in s and "agree" in s


def test_bottom_line_uses_the_plan_s_words_one_row_per_claim() -> None:
    v = V.plan_verdicts(synthetic_results("phantom", "imagenet", 2.0))
    text = P.bottom_line(v)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "{bdg-" in line]
    assert len(rows) == len(v)
    for (_, row), line in zip(v.iterrows(), rows):
        assert f"`{row['verdict']}`" in line and row["verdict"] in J.OUTCOMES
        assert row["shown"] in line
    assert f"of the image claims, {len(v[v['kind'] == 'image'])} not testable here" in text
