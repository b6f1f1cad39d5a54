"""The current epoch (or the LLM embedding step) as a progress bar with its latest losses."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from padtui.screens.run_state import RunState, fmt_seconds


class EpochProgress(Horizontal):
    def compose(self) -> ComposeResult:
        yield Label("", id="progress-label")
        yield ProgressBar(total=1, show_eta=False, id="progress-bar")

    def show(self, state: RunState) -> None:
        label = self.query_one("#progress-label", Label)
        bar = self.query_one("#progress-bar", ProgressBar)
        st = state.stages.get(state.current)
        if state.current == "embed" and state.embed and state.status == "running":
            e = state.embed
            label.update(f"embed items {e.get('items_done', 0)}/{e.get('items_total', 0)}"
                         f" · {e.get('items_per_s', 0):.0f}/s · ETA {fmt_seconds(e.get('eta'))}")
            bar.update(total=max(1, e.get("items_total") or 1), progress=e.get("items_done", 0))
        elif st is not None and st.steps_per_epoch:
            losses = " ".join(f"{k} {v:.3f}" for k, v in st.last_losses.items() if isinstance(v, (int, float)))
            label.update(
                f"{st.name} ep {st.epoch}/{st.epochs or '?'} · step {st.step}/{st.steps_per_epoch} · {losses}")
            done = st.steps_per_epoch if st.status != "running" else st.step
            bar.update(total=st.steps_per_epoch, progress=done)
        else:
            if state.status == "created" and not state.worker_alive:
                label.update("no worker is running for this run: see worker.out and log.txt in its folder")
            else:
                label.update("waiting for the first event…" if state.status in ("created", "running") else "no steps")
            bar.update(total=1, progress=0)
