"""All runs in the runs folder: status, preset, duration, headline metrics; open, compare, resume, stop, delete."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from core.runs import RunFolder, iter_runs
from padtui.results_table import fmt_metric
from padtui.screens import commands
from padtui.screens.confirm import ConfirmScreen
from padtui.screens.run_state import fmt_seconds
from padtui.widgets.stage_panel import MARKS

REFRESH_SECONDS = 3.0
COLUMNS = ("", "run", "status", "started", "time", "NDCG@10", "cold", "preset")


def _shown(path: Path | str) -> str:
    """A path relative to the working folder when it is inside it (shorter, and stable in snapshots)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_summaries(runs_dir: Path, cache: dict | None = None) -> list[dict]:
    """Every run's summary; `cache` skips re-reading runs whose events, results and worker did not change."""
    cache = {} if cache is None else cache
    out = []
    for run in iter_runs(runs_dir):
        try:
            events, results = run.events_path.stat(), run.results_path.stat() if run.results_path.exists() else None
            # status([]) looks only at the worker's pid: a killed worker changes the key too
            key = (events.st_size, events.st_mtime_ns, results and results.st_mtime_ns, run.status([]))
        except OSError:
            key = None
        if key is None or cache.get(run.path, (None,))[0] != key:
            cache[run.path] = (key, run.summary())
        out.append(cache[run.path][1])
    return out


class HistoryScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="history.back"),
        Binding("enter", "open", "Open", id="history.open"),
        Binding("space", "mark", "Mark", id="history.mark"),
        Binding("c", "compare", "Compare", id="history.compare"),
        Binding("r", "resume", "Resume", id="history.resume"),
        Binding("s", "stop", "Stop", id="history.stop"),
        Binding("d", "delete", "Delete", id="history.delete"),
        Binding("n", "app.setup", "New run", id="history.new"),
    ]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.summaries: list[dict] = []
        self.marked: list[str] = []
        self._cache: dict = {}

    def compose(self) -> ComposeResult:
        yield Static(f"padtui · history · {_shown(self.runs_dir)}", id="history-title", classes="screen-title")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=False)
        yield Static("", id="history-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column or "mark")
        self.show(load_summaries(self.runs_dir, self._cache))  # the first listing at once; refreshes in a thread
        self.set_interval(REFRESH_SECONDS, self._refresh)
        table.focus()

    def on_screen_resume(self) -> None:
        if self.summaries is not None and self.is_mounted:
            self._refresh()

    @work(thread=True, exclusive=True, group="history")
    def _refresh(self) -> None:
        summaries = load_summaries(self.runs_dir, self._cache)
        self.app.call_from_thread(self.show, summaries)

    def show(self, summaries: list[dict]) -> None:
        table = self.query_one(DataTable)
        current = self.selected()
        self.summaries = summaries
        table.clear()
        for s in summaries:
            mark, style = MARKS.get({"interrupted": "stopped", "created": "pending"}.get(s["status"], s["status"]),
                                    ("?", ""))
            head = s.get("headline") or {}
            started = time.strftime("%m-%d %H:%M", time.localtime(s["started"])) if s.get("started") else "—"
            table.add_row(
                "*" if s["path"] in self.marked else " ", self._display_name(s),
                Text(f"{mark} {s['status']}", style=style), started, fmt_seconds(s.get("seconds")),
                fmt_metric(head.get("NDCG@10")), fmt_metric(head.get("cold NDCG@10")), s.get("preset") or "—",
                key=s["path"],
            )
        if current:
            keys = [s["path"] for s in summaries]
            if current["path"] in keys:
                table.move_cursor(row=keys.index(current["path"]))
        if not summaries:
            self.query_one("#history-detail", Static).update(f"No runs in {_shown(self.runs_dir)} yet. n: new run.")
        else:
            self._describe()

    def _display_name(self, s: dict) -> str:
        """A seeded run shows as group/seed-N."""
        try:
            return str(Path(s["path"]).relative_to(self.runs_dir))
        except ValueError:
            return s["name"]

    def selected(self) -> dict | None:
        table = self.query_one(DataTable)
        if not self.summaries or table.cursor_row is None or table.cursor_row >= len(self.summaries):
            return None
        return self.summaries[table.cursor_row]

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._describe()

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open()

    def _describe(self) -> None:
        s = self.selected()
        if s:
            marked = f" · marked for compare: {len(self.marked)}/2" if self.marked else ""
            self.query_one("#history-detail", Static).update(f"{_shown(s['path'])}{marked}")

    # ───────────── actions ─────────────

    def action_open(self) -> None:
        if s := self.selected():
            self.app.open_run(Path(s["path"]))

    def action_mark(self) -> None:
        s = self.selected()
        if not s:
            return
        if s["path"] in self.marked:
            self.marked.remove(s["path"])
        else:
            self.marked = (self.marked + [s["path"]])[-2:]
        self.show(self.summaries)

    def action_compare(self) -> None:
        from padtui.screens.compare import CompareScreen

        paths = list(self.marked)
        s = self.selected()
        if len(paths) == 1 and s and s["path"] not in paths:
            paths.append(s["path"])
        if len(paths) != 2:
            self.notify("Mark two runs with space (or mark one and put the cursor on another), then press c.")
            return
        self.app.push_screen(CompareScreen(Path(paths[0]), Path(paths[1])))

    def action_resume(self) -> None:
        s = self.selected()
        if not s:
            return
        if s["status"] not in ("stopped", "interrupted", "failed"):
            self.notify(f"{s['name']} is {s['status']}: only a stopped, interrupted or failed run can be resumed.")
            return
        self.notify(f"Resuming {s['name']}…")
        self._resume(Path(s["path"]))

    @work(thread=True, group="resume")
    def _resume(self, path: Path) -> None:
        try:
            commands.resume(path)
        except commands.CommandError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="resume failed", severity="error", timeout=15)
            return
        self.app.call_from_thread(self.app.open_run, path)

    def action_stop(self) -> None:
        s = self.selected()
        if not s or s["status"] != "running":
            self.notify("The selected run is not running.")
            return

        def confirmed(yes: bool | None) -> None:
            if yes and RunFolder(Path(s["path"])).stop():
                self.notify("SIGTERM sent: the worker saves a checkpoint and exits.")

        self.app.push_screen(ConfirmScreen(f"Stop {s['name']}? It can be resumed."), confirmed)

    def action_delete(self) -> None:
        s = self.selected()
        if not s:
            return
        if s["status"] == "running":
            self.notify(f"{s['name']} is running: stop it first (s).", severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            if RunFolder(Path(s["path"])).status() == "running":
                self.notify("It started running again; not deleted.", severity="warning")
                return
            shutil.rmtree(s["path"], ignore_errors=True)
            self.marked = [p for p in self.marked if p != s["path"]]
            self.show([x for x in self.summaries if x["path"] != s["path"]])
            self.notify(f"Deleted {s['name']}.")

        self.app.push_screen(ConfirmScreen(f"Delete {s['name']} and its checkpoints?\n{s['path']}"), confirmed)

    def palette_commands(self):
        yield ("Compare marked runs", "side by side: results and config differences", self.action_compare)
        yield ("Resume selected run", "continue from its last checkpoint", self.action_resume)
        yield ("Delete selected run", "remove the run folder (not while running)", self.action_delete)
