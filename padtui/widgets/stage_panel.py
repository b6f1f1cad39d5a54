"""One box per PAD stage: state, elapsed time, ETA, best epoch."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from padtui.screens.run_state import STAGE_TITLES, RunState, fmt_seconds

# a symbol as well as a colour, so nothing is lost without colours (NO_COLOR, monochrome terminals)
MARKS = {
    "pending": ("○", "dim"),
    "running": ("▶", "bold yellow"),
    "done": ("✓", "bold green"),
    "failed": ("✗", "bold red"),
    "stopped": ("■", "bold magenta"),
    "interrupted": ("◆", "bold magenta"),  # the worker died without saying so (kill -9, power cut)
}


class StagePanel(Static):
    def __init__(self, stage: str, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.stage = stage
        self.border_title = STAGE_TITLES[stage]

    def show(self, state: RunState) -> None:
        st = state.stages[self.stage]
        mark, style = MARKS.get(st.status, ("?", ""))
        text = Text()
        text.append(f"{mark} {st.status}", style=style)
        elapsed = state.stage_elapsed(st)
        if elapsed is not None:
            text.append(f" {fmt_seconds(elapsed)}")
        details = []
        if st.status == "running":
            if st.epochs:
                details.append(f"ep {st.epoch}/{st.epochs}")
            eta = state.stage_eta(st)
            details.append(f"ETA {fmt_seconds(eta)}")
        elif st.epoch or st.evals:
            details.append(f"{max([st.epoch, *st.evals])} ep")
        if st.best_epoch is not None:
            details.append(f"best {st.best_epoch}")
        text.append("\n" + " · ".join(details), style="dim" if st.status != "running" else "")
        embed = state.embed
        if self.stage == "align" and st.status == "pending" and state.current == "embed" and state.status == "running":
            text = Text(f"◌ embedding items {embed.get('items_done', 0)}/{embed.get('items_total', '?')}")
            text.append(f"\nETA {fmt_seconds(embed.get('eta'))}", style="dim")
        self.set_class(st.status == "running", "-running")
        self.update(text)
