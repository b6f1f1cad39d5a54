"""Shared helpers for the TUI tests (no tests here): an isolated environment and run-folder fixtures."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
DEMO_RUN = DATA / "demo_run"  # a recorded demo run: config.toml, events.jsonl, results.json, log.txt
DEMO_NAME = "demo-20261127-035213"


@pytest.fixture
def tui_env(tmp_path, monkeypatch):
    """Empty caches / presets / HF home, UTC, cwd = tmp_path: what the screens show depends only on the test."""
    for name in ("cache", "presets", "hf", "runs"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("PADTUI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PADTUI_PRESETS", str(tmp_path / "presets"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)
    # the offline assets count as fetched: a launch goes straight to the (faked) worker; the fetch dialog's own
    # test (test_tui.py::test_first_launch_fetches_the_missing_asset_then_launches) lifts this
    from core import assets

    monkeypatch.setattr(assets, "needed", lambda cfg, stages=(): [])
    yield tmp_path
    monkeypatch.undo()
    time.tzset()


def demo_events() -> list[dict]:
    return [json.loads(line) for line in (DEMO_RUN / "events.jsonl").read_text().splitlines() if line.strip()]


def copy_run(runs_dir: Path, name: str = DEMO_NAME, events: int | None = None, mtime: float = 1795751193.0,
             results: bool = True) -> Path:
    """The recorded demo run copied into runs_dir; `events` keeps only the first N events (a half-done run)."""
    target = runs_dir / name
    shutil.copytree(DEMO_RUN, target)
    if events is not None:
        lines = (DEMO_RUN / "events.jsonl").read_text().splitlines(keepends=True)[:events]
        (target / "events.jsonl").write_text("".join(lines))
    if not results or events is not None:
        (target / "results.json").unlink(missing_ok=True)
    os.utime(target, (mtime, mtime))
    return target


def first_index(events: list[dict], **match) -> int:
    return next(i for i, e in enumerate(events) if all(e.get(k) == v for k, v in match.items()))


def screen_text(app) -> str:
    """What the terminal shows right now, as plain text (the SVG screenshot's content without styles)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
