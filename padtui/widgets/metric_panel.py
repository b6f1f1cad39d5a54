"""Validation NDCG@10 and HR@10 per epoch, one small plot per item group: overall, warm, cold."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual_plotext import PlotextPlot

from padtui.screens.run_state import GROUPS, STAGES, RunState

SERIES = (("NDCG@10", "braille", "cyan", "N@10"), ("HR@10", "•", "green", "H@10"))
SHORT = {"pretrain": "pre", "align": "al", "disentangle": "dis"}


class MetricPanel(Horizontal):
    def compose(self) -> ComposeResult:
        for group in GROUPS:
            yield PlotextPlot(id=f"metric-{group}", classes="metric-plot")

    def show(self, state: RunState) -> None:
        # the plots exist only between compose and teardown: an update that arrives before (a very early
        # event) or after (a quit while events stream in) has nothing to draw on
        plots = {p.id: p for p in self.query(PlotextPlot)}
        if any(f"metric-{group}" not in plots for group in GROUPS):
            return
        offsets = state.offsets()
        started = [s for s in STAGES if state.stages[s].evals]
        for group in GROUPS:
            plt = plots[f"metric-{group}"].plt
            plt.clear_figure()
            top = 0.0
            for metric, marker, color, short in SERIES:
                xs, ys = state.metric_series(group, metric)
                if xs:
                    plt.plot(xs, ys, marker=marker, color=color, label=f"{short} {ys[-1]:.3f}")
                    top = max(top, *ys)
            plt.ylim(0, top * 1.15 if top > 0 else 1)  # metrics are ≥ 0: the axis starts at 0, all-zero too
            plt.title(group)
            for stage in started[1:]:
                plt.vline(offsets[stage] + 0.5, "gray")
            if started:
                plt.xticks([offsets[s] + 1 for s in started], [SHORT[s] for s in started])
            else:
                plt.xlim(0, 1)
            plots[f"metric-{group}"].refresh()
