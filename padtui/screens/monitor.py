"""Run monitor: follows a run folder's events.jsonl and draws stages, losses, metrics, gate, log, results.

A thread worker polls every half second (events from a byte offset, log tail, worker liveness, CPU/RSS),
the UI thread folds the new events and redraws. Cheap widgets update every poll; plots (35–70 ms each)
redraw at most once a second, and the metric plots only when an evaluation arrived.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.runs import RunFolder, pid_alive
from padtui.screens import commands
from padtui.screens.confirm import ConfirmScreen
from padtui.screens.run_state import STAGES, RunState
from padtui.widgets.epoch_progress import EpochProgress
from padtui.widgets.gate_table import GateTable
from padtui.widgets.log_tail import LogTail
from padtui.widgets.loss_curves import LossCurves
from padtui.widgets.metric_panel import MetricPanel
from padtui.widgets.resource_line import ResourceLine
from padtui.widgets.results_view import ResultsView
from padtui.widgets.stage_panel import StagePanel

POLL_SECONDS = 0.5
PLOT_MIN_INTERVAL = 1.0
WIDE = 120  # columns from which charts sit side by side


class _Follower:
    """Thread-side reader: remembers the byte offset and samples the worker process."""

    def __init__(self, run: RunFolder):
        self.run = run
        self.offset = 0
        self.log_size = -1
        self._proc = None

    def poll(self) -> dict:
        pid = self.run.worker_pid()
        alive = bool(pid and pid_alive(pid))  # checked before reading, so a run_end is never missed
        events, self.offset = self.run.read_events(self.offset)
        out: dict = {"events": events, "alive": alive, "live": self._sample(pid if alive else None)}
        try:
            size = self.run.log_path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size != self.log_size:
            self.log_size = size
            out["log"] = self.run.log_tail(40)
        return out

    def _sample(self, pid: int | None) -> dict:
        if pid is None:
            self._proc = None
            return {}
        try:
            import psutil

            if self._proc is None or self._proc.pid != pid:
                self._proc = psutil.Process(pid)
                self._proc.cpu_percent(None)
                return {}
            procs = [self._proc, *self._proc.children(recursive=True)]
            cpu = sum(p.cpu_percent(None) for p in procs)
            rss = sum(p.memory_info().rss for p in procs) / 2**20
            return {"cpu_percent": cpu, "rss_mb": rss}
        except Exception:  # the process went away between calls, or psutil is missing
            return {}


class MonitorScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="monitor.back"),
        Binding("s", "stop", "Stop", id="monitor.stop"),
        Binding("r", "resume", "Resume", id="monitor.resume"),
        Binding("f2", "app.history", "History", id="monitor.history"),
        Binding("n", "app.setup", "New run", id="monitor.new"),
        Binding("t", "scroll_results", "Results table", id="monitor.results"),
    ]

    def __init__(self, run_path: Path) -> None:
        super().__init__()
        self.run = RunFolder(Path(run_path))
        self.state = RunState()
        self.alive = False
        self.live: dict = {}
        self.results: dict = {}
        self._follower = _Follower(self.run)
        self._polling = False
        self._drawn = (-1, -1)
        self._plot_time = 0.0
        self._ended = False
        self._titled = False
        self._shown_results: dict | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"padtui · monitor · {self.run.name}", id="monitor-title", classes="screen-title")
        with Horizontal(id="stages"):
            for stage in STAGES:
                yield StagePanel(stage, id=f"stage-{stage}", classes="stage-panel")
        yield ResourceLine("", id="resources")
        yield EpochProgress(id="progress")
        with VerticalScroll(id="monitor-body"):
            with Horizontal(id="charts"):
                yield LossCurves(id="loss")
                yield MetricPanel(id="metrics")
            with Horizontal(id="details"):
                yield GateTable("", id="gate")
                yield ResultsView("", id="results")
            yield LogTail(id="log")
        yield Footer()

    def on_mount(self) -> None:
        for widget_id, title in (("loss", "loss"), ("metrics", "validation NDCG@10 (N) · HR@10 (H)"),
                                 ("gate", "gate weights per frequency bin"), ("results", "results (test)"),
                                 ("log", "log")):
            self.query_one(f"#{widget_id}").border_title = title
        self.query_one("#monitor-body").focus()
        self._apply_size(self.size.width)
        self.ingest(self._follower.poll())  # the history so far, at once; later polls run in a thread
        self.set_interval(POLL_SECONDS, self._poll)

    def on_resize(self, event) -> None:
        self._apply_size(event.size.width)

    def _apply_size(self, width: int) -> None:
        self.set_class(width < WIDE, "-narrow")

    # ───────────── following ─────────────

    def _poll(self) -> None:
        if not self._polling:
            self._polling = True
            self._read()

    @work(thread=True, group="follow")
    def _read(self) -> None:
        try:
            update = self._follower.poll()
        except Exception as exc:  # never let a bad read kill the monitor
            update = {"events": [], "alive": False, "live": {}, "error": str(exc)}
        self.app.call_from_thread(self.ingest, update)

    def ingest(self, update: dict) -> None:
        """Fold a poll's results into the state and redraw (UI thread)."""
        self._polling = False
        if not self.query(LogTail):  # a poll that lands after the screen was torn down (a quit mid-read)
            return
        self.state.feed(update.get("events", []))
        was_alive, self.alive = self.alive, update.get("alive", False)
        if was_alive != self.alive:
            self.refresh_bindings()
        self.state.worker_alive = self.alive
        self.live = update.get("live", {})
        if not self.alive:
            self.state.mark_dead()
        log = self.query_one(LogTail)
        if "log" in update or log.error != self.state.error:
            log.show(update.get("log", log.lines), self.state.error)
        self.redraw()

    def redraw(self, force: bool = False) -> None:
        state = self.state
        for stage in STAGES:
            self.query_one(f"#stage-{stage}", StagePanel).show(state)
        self.query_one(ResourceLine).show(state, self.live)
        self.query_one(EpochProgress).show(state)
        now = time.monotonic()
        loss_version, eval_version = self._drawn
        if state.version != loss_version and (force or now - self._plot_time >= PLOT_MIN_INTERVAL
                                               or state.status != "running"):
            self.query_one(LossCurves).show(state)
            self._plot_time = now
            loss_version = state.version
        if state.eval_version != eval_version:
            self.query_one(MetricPanel).show(state)
            gate, epoch = state.gate()
            self.query_one(GateTable).show(gate, epoch)
            eval_version = state.eval_version
        self._drawn = (loss_version, eval_version)
        if state.run and not self._titled:
            self._titled = True
            preset, seed = state.run.get("preset") or "—", state.run.get("seed", "—")
            self.query_one("#monitor-title", Static).update(
                f"padtui · monitor · {self.run.name} · preset {preset} · seed {seed}")
        ended = state.status not in ("created", "running")
        if ended != self._ended:
            self._ended = ended
            self.results = self.run.results() if ended else {}  # results.json adds the protocol
            self.refresh_bindings()
        results = self.results or state.results()
        if results != self._shown_results:
            self._shown_results = results
            self.query_one(ResultsView).show(results)

    # ───────────── actions ─────────────

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "stop":
            return self.alive
        if action == "resume":
            return not self.alive and self.state.status in ("stopped", "interrupted", "failed")
        return True

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.action_setup()

    def action_scroll_results(self) -> None:
        self.query_one("#monitor-body", VerticalScroll).scroll_to_widget(self.query_one(ResultsView))

    def action_stop(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                sent = self.run.stop()
                self.notify("SIGTERM sent: the worker saves a checkpoint and exits; resume with r."
                            if sent else "The worker is not running.")

        self.app.push_screen(
            ConfirmScreen(f"Stop {self.run.name}?\nThe worker saves a checkpoint and exits; the run can be resumed."),
            confirmed,
        )

    def action_resume(self) -> None:
        self.notify(f"Resuming {self.run.name}…")
        self._resume()

    @work(thread=True, group="resume", exclusive=True)
    def _resume(self) -> None:
        try:
            commands.resume(self.run.path)
        except commands.CommandError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="resume failed", severity="error", timeout=15)
            return
        self.app.call_from_thread(self.notify, "Resumed: following the run again.")

    def palette_commands(self):
        """(title, help, callback) triples the app's command palette offers on this screen."""
        yield ("Stop run", f"SIGTERM {self.run.name}: checkpoint and exit, resumable", self.action_stop)
        yield ("Resume run", f"continue {self.run.name} from its last checkpoint", self.action_resume)
        yield ("Show results", "scroll to the results table", self.action_scroll_results)
