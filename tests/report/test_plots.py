"""Figures: legible text, fixed curve axes, legends outside the data, no NaN titles (mcalc.report.plots)."""

from __future__ import annotations

import pandas as pd
import pytest

from mcalc.report import plots


def _evaluation():
    """A small three-class evaluation (no bootstrap)."""
    import numpy as np

    from mcalc.evaluate import evaluation

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    proba = rng.dirichlet([1, 1, 1], size=len(y))
    return evaluation.evaluate(y, proba, n_boot=0)


def _history(scale: float):
    """A training history whose values lie in a narrow band (as Adadelta's do)."""
    import numpy as np

    epochs = 5
    band = np.linspace(0, 1e-4, epochs) * scale
    return pd.DataFrame(
        {
            "loss": 1.099 + band,
            "val_loss": 1.0992 + band,
            "accuracy": 0.3 + band,
            "val_accuracy": 0.31 + band,
            "sensitivity_at_specificity": 0.2 + band,
            "val_sensitivity_at_specificity": 0.21 + band,
        }
    )


def _texts(fig):
    """Every non-empty text of a figure (titles, labels, ticks, legends, annotations)."""
    import matplotlib.text

    fig.canvas.draw()
    return [
        t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()
    ]


def test_figure_text_is_at_least_10_pt():
    """The curves, ROC, confusion and panel figures use no text smaller than MIN_FONTSIZE."""
    import matplotlib.pyplot as plt

    ev = _evaluation()
    for fig in (
        plots.training_curves(_history(1), title="Adam"),
        plots.optimizer_panel({"Adam": _history(1), "Adadelta": _history(2)}),
        plots.roc_and_confusion(ev, title="Adam"),
        plots.roc_panel({"a": ev, "b": ev}),
    ):
        small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < 10]
        plt.close(fig)
        assert small == []


def test_training_curves_share_fixed_axes_whatever_the_values():
    """Figures 4–7 compare at a glance: a flat loss near 1.099 is drawn on the same 0–1.5 axis as any other."""
    import matplotlib.pyplot as plt

    limits = []
    for scale in (1, 50):
        fig = plots.training_curves(_history(scale))
        limits.append([ax.get_ylim() for ax in fig.axes])
        plt.close(fig)
    assert limits[0] == limits[1]
    assert limits[0][0] == plots.CURVE_LIMITS["loss"] and limits[0][1] == (0.0, 1.0)
    assert plots.curve_limits("loss", [0.2, 2.3]) == (0.0, 2.5)  # widened, never clipped


def test_legends_lie_outside_the_data():
    """No legend box overlaps an axes' plotting area, its tick labels or its axis labels."""
    import matplotlib.pyplot as plt

    ev = _evaluation()
    for fig in (
        plots.training_curves(_history(1)),
        plots.optimizer_panel({"Adam": _history(1), "RMSprop": _history(3)}),
        plots.roc_and_confusion(ev),
        plots.roc_panel({"a": ev}),
    ):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        assert legends
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:  # neither the data nor the axis labels and ticks
                for part in (ax, ax.xaxis, ax.yaxis):
                    other = (
                        part.get_window_extent(renderer)
                        if part is ax
                        else part.get_tightbbox(renderer)
                    )
                    assert other is None or not box.overlaps(other), (ax.get_title(), part)
        plt.close(fig)


@pytest.mark.parametrize(
    "calc_type, distribution, title",
    [
        ("PLEOMORPHIC", "CLUSTERED", "pleomorphic\nclustered"),
        (float("nan"), "SEGMENTAL", "segmental"),
        (None, float("nan"), "type not recorded"),
        ("PUNCTATE-AMORPHOUS-PLEOMORPHIC-FINE_LINEAR_BRANCHING", "nan", "punctate-amorphous-pl…"),
    ],
)
def test_roi_titles_never_show_nan(calc_type, distribution, title):
    """A sample ROI's panel title leaves out missing metadata instead of printing 'nan'."""
    assert plots.roi_title(calc_type, distribution) == title


def test_table1_chart_draws_the_official_and_the_paper_counts():
    """One bar per class and source in each split, labelled with the counts of Table 1 (total left out)."""
    import matplotlib.pyplot as plt

    from mcalc.evaluate import metadata

    t1 = metadata.table1()
    fig = plots.table1_chart(t1)
    labels = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"67", "99", "129", "94", "474", "545"} <= labels  # official and paper, both splits
    assert "1546" not in labels and "326" not in labels  # no total bar
    assert all(t.get_fontsize() >= 10 for t in _texts(fig))
    plt.close(fig)
