"""The monitor's model: a run's events.jsonl folded into per-stage state.

Pure Python (no Textual, no torch) so it is unit-testable and shared by the monitor and compare screens.
Events are applied one at a time in file order; attaching to a half-done run simply replays the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

STAGES = ("pretrain", "align", "disentangle")
STAGE_TITLES = {"pretrain": "1 pretrain", "align": "2 align", "disentangle": "3 disentangle"}
GROUPS = ("overall", "warm", "cold")
MAX_POINTS = 600  # per loss series; older points are thinned, never the newest


def fmt_seconds(seconds: float | None) -> str:
    """1:05, 12:40, 1:02:03 — or an em dash when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class StageState:
    name: str
    status: str = "pending"  # pending | running | done | failed | stopped | interrupted
    started: float | None = None
    ended: float | None = None
    seconds: float | None = None  # as reported by stage_end
    epochs: int = 0
    steps_per_epoch: int = 0
    epoch: int = 0
    step: int = 0
    eta: float | None = None
    eta_time: float | None = None
    lr: float | None = None
    last_losses: dict = field(default_factory=dict)
    # (epoch, step, x in epochs since the stage began, losses)
    loss_points: list[tuple[int, int, float, dict]] = field(default_factory=list)
    epoch_losses: dict[int, dict] = field(default_factory=dict)
    evals: dict[int, dict] = field(default_factory=dict)  # epoch -> metrics {"overall": {...}, ...}
    best_epoch: int | None = None
    gate: dict = field(default_factory=dict)  # bin -> {expert: weight}
    gate_epoch: int | None = None
    valid: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)

    @property
    def span(self) -> int:
        """Epochs this stage occupies on the run-wide x axis."""
        seen = max([0, *self.evals, *self.epoch_losses, self.epoch])
        return seen if self.status != "running" else max(seen, self.epochs)


@dataclass
class RunState:
    clock: Callable[[], float] = time.time
    run: dict = field(default_factory=dict)  # the run_start event
    stages: dict[str, StageState] = field(default_factory=lambda: {s: StageState(s) for s in STAGES})
    embed: dict = field(default_factory=dict)  # the last embedding step event
    status: str = "created"  # from events alone: running | done | failed | stopped
    first_time: float | None = None
    last_time: float | None = None
    closed_seconds: float = 0.0  # worker sessions that ended (a resumed run has several)
    session_start: float | None = None
    error: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)  # rss_mb, gpu_mem_mb, gpu_util from the last step
    current: str = ""  # the stage events last came from
    version: int = 0  # bumps on every event: cheap change detection for redraws
    eval_version: int = 0  # bumps on eval / stage_end: metric plots redraw only then
    n_events: int = 0
    worker_alive: bool = True  # set by the monitor from worker.pid

    # ───────────── folding ─────────────

    def feed(self, events: list[dict]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: dict) -> None:
        kind, stage = event.get("kind"), event.get("stage", "")
        when = event.get("time")
        if when is not None:
            self.first_time = when if self.first_time is None else self.first_time
            self.last_time = when
        self.n_events += 1
        self.version += 1
        handler = getattr(self, f"_on_{kind}", None)
        if stage == "embed":
            self._on_embed(event)
        elif handler:
            handler(event, self.stages.get(stage))

    def _on_run_start(self, e: dict, _st) -> None:
        self.run = e
        self._open_session(e)

    def _on_resumed(self, e: dict, st: StageState | None) -> None:
        if st is None:
            self._open_session(e)
        else:
            st.status = "running"

    def _open_session(self, e: dict) -> None:
        self._close_session(None)
        self.status = "running"
        self.error = {}
        self.session_start = e.get("time")

    def _on_stage_start(self, e: dict, st: StageState | None) -> None:
        if st is None:
            return
        self.current = st.name
        self.status = "running"
        st.status = "running"
        st.started = st.started or e.get("time")
        st.ended = None
        st.epochs = e.get("epochs", st.epochs)
        st.steps_per_epoch = e.get("steps_per_epoch", st.steps_per_epoch)

    def _on_step(self, e: dict, st: StageState | None) -> None:
        if st is None:
            return
        self.current = st.name
        if st.status == "pending":
            st.status = "running"
            st.started = st.started or e.get("time")
        st.epoch, st.step = e.get("epoch", st.epoch), e.get("step", st.step)
        st.steps_per_epoch = e.get("steps_per_epoch") or st.steps_per_epoch
        st.eta, st.eta_time = e.get("eta"), e.get("time")
        st.lr = e.get("lr", st.lr)
        losses = e.get("losses") or {}
        st.last_losses = losses
        key = (st.epoch, st.step)
        while st.loss_points and st.loss_points[-1][:2] >= key:  # a resumed epoch replays its steps
            st.loss_points.pop()
        x = st.epoch - 1 + st.step / max(1, st.steps_per_epoch)
        st.loss_points.append((st.epoch, st.step, x, losses))
        if len(st.loss_points) > MAX_POINTS:
            st.loss_points = st.loss_points[: -MAX_POINTS // 2 : 2] + st.loss_points[-MAX_POINTS // 2 :]
        for k in ("rss_mb", "gpu_mem_mb", "gpu_util"):
            if e.get(k) is not None:
                self.resources[k] = e[k]

    def _on_embed(self, e: dict) -> None:
        if e.get("kind") == "step":
            self.embed = e
            self.current = "embed"
        elif e.get("kind") == "stage_end":
            self.embed = {**self.embed, "done": True}

    def _on_epoch(self, e: dict, st: StageState | None) -> None:
        if st is not None:
            st.epoch_losses[e.get("epoch", 0)] = e.get("losses") or {}

    def _on_eval(self, e: dict, st: StageState | None) -> None:
        if st is None:
            return
        epoch = e.get("epoch", 0)
        st.evals[epoch] = e.get("metrics") or {}
        if e.get("best"):
            st.best_epoch = epoch
        if e.get("gate"):
            st.gate, st.gate_epoch = e["gate"], epoch
        self.eval_version += 1

    def _on_stage_end(self, e: dict, st: StageState | None) -> None:
        if st is None:
            return
        status = e.get("status", "done")
        st.status = status if status in ("done", "failed", "stopped") else "done"
        st.ended = e.get("time")
        st.seconds = e.get("seconds")
        st.best_epoch = e.get("best_epoch", st.best_epoch)
        st.valid, st.test = e.get("valid") or {}, e.get("test") or {}
        if e.get("gate"):
            st.gate = e["gate"]
        st.eta = None
        self.eval_version += 1

    def _on_run_end(self, e: dict, _st) -> None:
        self.status = e.get("status", "done")
        self._close_session(e.get("seconds"))
        self._close_running("failed" if self.status == "failed" else "stopped")

    def _on_error(self, e: dict, _st) -> None:
        self.error = e
        self.status = "stopped" if e.get("interrupted") else "failed"
        self._close_running(self.status)

    def _close_session(self, seconds: float | None) -> None:
        if self.session_start is not None:
            self.closed_seconds += seconds if seconds is not None else (self.last_time or 0) - self.session_start
            self.session_start = None

    def _close_running(self, status: str) -> None:
        for st in self.stages.values():
            if st.status == "running":
                st.status, st.ended, st.eta = status, self.last_time, None

    # ───────────── derived ─────────────

    def now(self) -> float:
        return self.clock()

    def mark_dead(self) -> None:
        """The worker is gone without a run_end (killed): what was running is interrupted."""
        if self.status == "running":
            self.status = "interrupted"
            self._close_session(None)
            self._close_running("interrupted")  # one word for one state: the header and the stage panel agree

    def elapsed(self) -> float | None:
        """Time the worker(s) ran: closed sessions plus the one going on."""
        if self.first_time is None:
            return None
        if self.session_start is None:
            return self.closed_seconds
        end = self.now() if self.status == "running" else (self.last_time or self.session_start)
        return self.closed_seconds + max(0.0, end - self.session_start)

    def stage_elapsed(self, st: StageState) -> float | None:
        if st.started is None:
            return None
        if st.seconds is not None and st.status != "running":
            return st.seconds
        end = self.now() if st.status == "running" and self.status == "running" else (st.ended or self.last_time)
        return max(0.0, (end or st.started) - st.started)

    def stage_eta(self, st: StageState) -> float | None:
        if st.status != "running" or st.eta is None or self.status != "running":
            return None
        return max(0.0, st.eta - (self.now() - (st.eta_time or self.now())))

    def offsets(self) -> dict[str, int]:
        """Where each stage starts on the run-wide epoch axis."""
        out, total = {}, 0
        for name in STAGES:
            out[name] = total
            total += self.stages[name].span
        return out

    def loss_series(self) -> dict[str, tuple[list[float], list[float]]]:
        """Loss name -> (x in run-wide epochs, values), over all stages."""
        series: dict[str, tuple[list[float], list[float]]] = {}
        offsets = self.offsets()
        for name in STAGES:
            for _, _, x, losses in self.stages[name].loss_points:
                for key, value in losses.items():
                    if value is None:
                        continue
                    xs, ys = series.setdefault(key, ([], []))
                    xs.append(offsets[name] + x)
                    ys.append(value)
        return series

    def metric_series(self, group: str, metric: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        offsets = self.offsets()
        for name in STAGES:
            for epoch in sorted(self.stages[name].evals):
                value = self.stages[name].evals[epoch].get(group, {}).get(metric)
                if value is not None:
                    xs.append(offsets[name] + epoch)
                    ys.append(value)
        return xs, ys

    def latest_metrics(self) -> tuple[str, int, dict] | None:
        for name in reversed(STAGES):
            evals = self.stages[name].evals
            if evals:
                epoch = max(evals)
                return name, epoch, evals[epoch]
        return None

    def results(self) -> dict:
        """results.json's shape, from stage_end events (before results.json exists)."""
        stages = {}
        for name in STAGES:
            st = self.stages[name]
            if st.test:
                stages[name] = {"valid": st.valid, "test": st.test, "best_epoch": st.best_epoch, "seconds": st.seconds}
                if st.gate:
                    stages[name]["gate"] = st.gate
        return {"stages": stages} if stages else {}

    def gate(self) -> tuple[dict, int | None]:
        st = self.stages["disentangle"]
        return st.gate, st.gate_epoch
