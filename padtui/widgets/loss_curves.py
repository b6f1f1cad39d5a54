"""Training loss over the whole run: total and its components (rec, MMD, the experts' own losses in stage 3),
stage boundaries marked."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from padtui.screens.run_state import STAGES, RunState

# distinct markers as well as colours, so the lines stay apart without colour
STYLE = {"total": ("braille", "cyan"), "rec": ("•", "green"), "mmd": ("x", "magenta"), "align": ("x", "magenta")}
SHORT = {"pretrain": "pre", "align": "align", "disentangle": "dis"}


class LossCurves(PlotextPlot):
    def show(self, state: RunState) -> None:
        plt = self.plt
        plt.clear_figure()
        series = state.loss_series()
        plt.title("loss (mmd: right axis)" if "mmd" in series or "align" in series else "loss")
        offsets = state.offsets()
        started = [s for s in STAGES if state.stages[s].started is not None]
        for stage in started[1:]:
            plt.vline(offsets[stage], "gray")
        if started:
            plt.xticks([offsets[s] for s in started], [SHORT[s] for s in started])
        for name, (xs, ys) in series.items():
            marker, color = STYLE.get(name, ("+", "yellow"))
            side = "right" if name in ("mmd", "align") else "left"
            plt.plot(xs, ys, marker=marker, color=color, label=name, yside=side)
        if not series:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        self.refresh()
