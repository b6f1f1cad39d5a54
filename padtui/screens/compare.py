"""Two runs side by side: their results tables, the change B vs A, and every config key that differs."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.config import read_toml
from core.errors import InputError
from core.runs import RunFolder
from padtui.results_table import GROUPS, METRICS, STAGE_ROWS, fmt_change, metric, relative_change
from padtui.screens.run_state import fmt_seconds
from padtui.widgets.results_view import ResultsView


def flatten(data: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def config_diff(a: Path, b: Path) -> list[tuple[str, object, object]]:
    try:
        fa, fb = flatten(read_toml(a)), flatten(read_toml(b))
    except InputError:
        return []
    return [(k, fa.get(k, "—"), fb.get(k, "—")) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def delta_table(a: dict, b: dict) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="B vs A (test, relative change)", title_justify="left")
    table.add_column("stage", no_wrap=True)
    for group in GROUPS:
        for name in METRICS:
            table.add_column(f"{group}\n{name}", justify="right")
    for stage, label in STAGE_ROWS:
        cells = [fmt_change(relative_change(metric(b, stage, g, m), metric(a, stage, g, m))) or "—"
                 for g in GROUPS for m in METRICS]
        table.add_row(label, *cells)
    return table


class CompareScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="compare.back")]

    def __init__(self, a: Path, b: Path) -> None:
        super().__init__()
        self.runs = (RunFolder(a), RunFolder(b))

    def compose(self) -> ComposeResult:
        yield Static(f"padtui · compare · A {self.runs[0].name} · B {self.runs[1].name}", classes="screen-title")
        with VerticalScroll(id="compare-body"):
            with Vertical(id="compare-results"):  # one above the other: each table keeps its full width
                for tag, run in zip("AB", self.runs):
                    yield ResultsView("", id=f"results-{tag}", classes="compare-side")
            yield Static("", id="compare-delta")
            yield Static("", id="compare-config")
        yield Footer()

    def on_mount(self) -> None:
        results = []
        for tag, run in zip("AB", self.runs):
            s = run.summary()
            view = self.query_one(f"#results-{tag}", ResultsView)
            view.border_title = f"{tag}: {run.name}"
            view.border_subtitle = f"{s['status']} · {s.get('preset') or '—'} · {fmt_seconds(s.get('seconds'))}"
            res = run.results()
            view.show(res, waiting="no results yet")
            results.append(res)
        self.query_one("#compare-delta", Static).update(delta_table(*results))
        diff = config_diff(self.runs[0].config_path, self.runs[1].config_path)
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="config keys that differ", title_justify="left")
        table.add_column("key", no_wrap=True)
        table.add_column("A")
        table.add_column("B")
        for key, va, vb in diff:
            table.add_row(key, str(va), str(vb))
        self.query_one("#compare-config", Static).update(table if diff else Text("configs are identical"))
        self.query_one("#compare-body").focus()
