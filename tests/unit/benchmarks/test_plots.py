"""The committed charts are readable: tick labels of the throughput chart never overlap, and the
memory chart does not draw process RSS against a line that reads as its limit."""

from __future__ import annotations

import itertools

import pytest

from benchmarks.methods.report import Summary, plot_chart

matplotlib = pytest.importorskip("matplotlib")


def _summary(table: str, method: str, ratio: float) -> Summary:
    return Summary(table, method, 2, 0, False, 1000, 1.0 * ratio, 1.0, 2.0, 1000.0, 1.0, 100 << 20, ratio)


def _overlaps(boxes) -> list:
    return [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]


@pytest.mark.parametrize("ratios", [(1.0, 0.95, 1.25, 0.91, 1.0), (1.0, 0.31, 0.86, 0.81, 0.73), (1.0, 3.4, 16.1, 0.5)])
def test_regression_ratio_axis_tick_labels_used_to_overlap(tmp_path, monkeypatch, ratios):
    """Before: a log axis spanning 0.9x-1.25x printed minor tick labels 1.05x10^0, 1.1x10^0, ...
    on top of each other."""
    import matplotlib.figure

    figures = []
    real_savefig = matplotlib.figure.Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return real_savefig(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    summaries = [_summary("Posts", f"m{i}", r) for i, r in enumerate(ratios)]
    plot_chart(summaries, {}, tmp_path / "chart.png", "t")
    assert (tmp_path / "chart.png").stat().st_size > 1000
    fig = figures[0]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the chart's figure is closed after saving
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True) if t.get_text()]
    assert len(labels) >= 2  # the reader can still read the scale
    assert any(t.get_text() == "1x" for t in labels)
    assert _overlaps([t.get_window_extent(renderer) for t in labels]) == []


def test_regression_memory_chart_labelled_the_row_data_budget_as_if_it_bounded_rss(tmp_path, monkeypatch):
    """Before: process RSS (a ~230 MiB baseline included) was drawn against a line labelled only
    "budget", which reads as a violated limit; the budget bounds row data, the RSS bound is the
    process baseline plus it."""
    import matplotlib.figure

    from benchmarks.memory_benchmark import plot

    figures = []
    real_savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda self, *a, **k: (figures.append(self), real_savefig(self, *a, **k))[1])
    rows = [{"overlap": mode, "arrow_mb": mb, "peak_rss_mib": 230 + mb / 10, "baseline_rss_mib": 220,
             "high_water_mib": min(mb, 128), "wall_s": mb / 100, "budget_mib": 128}
            for mode in ("on", "off") for mb in (10, 100, 1000)]
    plot(rows, tmp_path / "memory.png")
    labels = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert "budget 128 MiB" not in labels
    assert any(label.startswith("row-data budget 128 MiB") and "not an RSS limit" in label for label in labels)
    assert "baseline RSS + row-data budget (348 MiB)" in labels
