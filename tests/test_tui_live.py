"""The TUI against the real engine (slow: `pytest -m slow tests/test_tui_live.py`).

Launch the demo from the setup screen, quit while it trains, check the worker survived, re-attach and see
the earlier epochs, Stop (SIGTERM → checkpoint, clean exit) and resume. The tmux test does the same through
a real terminal: `padtui` opens with the pickers, ctrl+q exits 0, and killing the tmux session (SIGHUP)
leaves the worker running for `padtui attach RUN`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.runs import RunFolder, pid_alive
from padtui.app import PadApp
from padtui.screens.confirm import ConfirmScreen
from padtui.screens.monitor import MonitorScreen
from test_tui_support import screen_text, tui_env  # noqa: F401

pytestmark = pytest.mark.slow
TRAIN_TIMEOUT = 300.0
REAL_ENV = {k: os.environ.get(k) for k in ("PADTUI_CACHE", "HF_HOME")}  # before any fixture isolates them


def _engine_ready() -> bool:
    try:
        from core.assets import is_fetched

        return is_fetched("minilm")
    except Exception:
        return False


needs_engine = pytest.mark.skipif(not _engine_ready(), reason="needs the engine and the minilm asset fetched")


@pytest.fixture
def live_env(tui_env, monkeypatch):
    """tui_env, but with the real caches (the demo's LLM is an offline asset fetched there)."""
    for key, value in REAL_ENV.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    yield tui_env


async def wait_for(pilot, condition, timeout: float = TRAIN_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout:.0f}s")
        await pilot.pause(0.2)


def evals(monitor: MonitorScreen) -> int:
    return sum(len(st.evals) for st in monitor.state.stages.values())


def kill_worker(run: Path | None) -> None:
    if run is None:
        return
    pid = RunFolder(run).worker_pid()
    if pid and pid_alive(pid):
        os.killpg(os.getpgid(pid), 9)


@needs_engine
def test_launch_quit_reattach_stop_resume(live_env):
    runs = live_env / "runs"
    found: dict = {}

    async def launch():
        app = PadApp(runs)
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.pause()
            await pilot.press("f5")
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 120)
            monitor = app.screen
            found["run"] = monitor.run.path
            await wait_for(pilot, lambda: evals(monitor) >= 2)
            found["evals"] = evals(monitor)
            await pilot.press("ctrl+q")

    try:
        asyncio.run(launch())
        run = found["run"]
        pid = RunFolder(run).worker_pid()
        assert pid and pid_alive(pid), "the worker must survive the TUI quitting"

        async def attach():
            app = PadApp(runs, attach=run)
            async with app.run_test(size=(160, 48)) as pilot:
                await pilot.pause()
                monitor = app.screen
                assert evals(monitor) >= found["evals"]  # the whole history at once
                assert len(monitor.state.metric_series("overall", "NDCG@10")[0]) == evals(monitor)
                before = evals(monitor)
                await wait_for(pilot, lambda: evals(monitor) > before)  # still progressing
                await pilot.press("s")
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10)
                await pilot.press("y")
                await wait_for(pilot, lambda: monitor.state.status == "stopped", 120)
                await wait_for(pilot, lambda: not pid_alive(pid), 30)
                assert "■ stopped" in screen_text(app)
                stopped_at = evals(monitor)
                await wait_for(pilot, lambda: monitor.check_action("resume", ()), 10)
                await pilot.press("r")
                await wait_for(pilot, lambda: monitor.state.status == "running" and monitor.alive, 120)
                await wait_for(pilot, lambda: evals(monitor) > stopped_at)  # resumed from the checkpoint
                epochs = sorted(monitor.state.stages["pretrain"].evals)
                assert epochs == list(range(1, len(epochs) + 1))  # no epoch lost or repeated

        asyncio.run(attach())
    finally:
        kill_worker(found.get("run"))


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def _pane(session: str) -> str:
    return _tmux("capture-pane", "-p", "-t", session)


def _wait_pane(session: str, text: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pane = _pane(session)
        if text in pane:
            return pane
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not on screen:\n{_pane(session)}")


@needs_engine
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_tmux_open_quit_launch_kill_session_attach(live_env):
    runs = live_env / "runs"
    padtui = f"{sys.executable} -m padtui --runs-dir {runs}"
    session = f"padtui-test-{os.getpid()}"
    done = live_env / "exit-code"
    run = None
    try:
        _tmux("new-session", "-d", "-s", session, "-x", "140", "-y", "45", f"{padtui}; echo $? > {done}; sleep 30")
        pane = _wait_pane(session, "Launch")
        for label in ("Dataset", "Backbone", "LLM", "Launch"):
            assert label in pane
        _tmux("send-keys", "-t", session, "C-q")
        deadline = time.monotonic() + 20
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done.read_text().strip() == "0"
        _tmux("kill-session", "-t", session)

        _tmux("new-session", "-d", "-s", session, "-x", "140", "-y", "45", padtui)
        _wait_pane(session, "Launch")
        _tmux("send-keys", "-t", session, "F5")
        _wait_pane(session, "padtui · monitor")
        runs_now = [p for p in runs.iterdir() if (p / "config.toml").is_file()]
        assert len(runs_now) == 1
        run = runs_now[0]
        deadline = time.monotonic() + TRAIN_TIMEOUT
        while sum(1 for e in RunFolder(run).events() if e["kind"] == "eval") < 2:
            assert time.monotonic() < deadline
            time.sleep(1)
        _tmux("kill-session", "-t", session)  # the terminal goes away: SIGHUP to the TUI
        time.sleep(2)
        pid = RunFolder(run).worker_pid()
        assert pid and pid_alive(pid)
        seen = sum(1 for e in RunFolder(run).events() if e["kind"] == "eval")

        _tmux("new-session", "-d", "-s", session, "-x", "140", "-y", "45", f"{padtui} attach {run}")
        pane = _wait_pane(session, "padtui · monitor")
        assert "1 pretrain" in pane and "overall" in pane
        deadline = time.monotonic() + TRAIN_TIMEOUT
        while sum(1 for e in RunFolder(run).events() if e["kind"] == "eval") <= seen:
            assert time.monotonic() < deadline
            time.sleep(1)
        time.sleep(1.5)
        assert "running" in _pane(session)
    finally:
        _tmux("kill-session", "-t", session)
        kill_worker(run)
