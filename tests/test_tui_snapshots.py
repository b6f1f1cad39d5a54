"""Snapshot tests (pytest-textual-snapshot): setup, monitor (the recorded demo run) and history screens at
80×24 and 160×48. Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs in tests/__snapshots__/."""

from __future__ import annotations

import pytest

from padtui.app import PadApp
from test_tui_support import copy_run, demo_events, first_index, tui_env  # noqa: F401

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


@pytest.mark.parametrize("size", SIZES)
def test_setup_screen(snap_compare, tui_env, size):
    assert snap_compare(PadApp(tui_env / "runs"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_monitor_finished_run(snap_compare, tui_env, size):
    run = copy_run(tui_env / "runs")
    assert snap_compare(PadApp(tui_env / "runs", attach=run), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_monitor_interrupted_in_stage_2(snap_compare, tui_env, size):
    events = demo_events()
    run = copy_run(tui_env / "runs", events=first_index(events, kind="eval", stage="align") + 1)
    assert snap_compare(PadApp(tui_env / "runs", attach=run), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_history_screen(snap_compare, tui_env, size):
    runs = tui_env / "runs"
    copy_run(runs, mtime=1795751193)
    copy_run(runs, name="demo-20261128-090000", events=30, mtime=1795837593)
    assert snap_compare(PadApp(runs), terminal_size=size, press=["f2"])
