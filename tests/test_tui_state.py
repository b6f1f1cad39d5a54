"""The monitor's model and the results table, on the recorded demo run (pure Python, no Textual)."""

from __future__ import annotations

import json

from core.runs import headline
from padtui.results_table import fmt_change, relative_change, rows
from padtui.screens.dataset_source import guess, read_columns
from padtui.screens.run_state import STAGES, RunState, fmt_seconds
from test_tui_support import demo_events, first_index


def test_full_history_folds_into_three_done_stages():
    events = demo_events()
    state = RunState()
    state.feed(events)
    assert state.status == "done"
    assert [state.stages[s].status for s in STAGES] == ["done", "done", "done"]
    for name in STAGES:
        st = state.stages[name]
        evals = [e for e in events if e["kind"] == "eval" and e["stage"] == name]
        assert sorted(st.evals) == [e["epoch"] for e in evals]  # every epoch kept, in order
        assert st.test  # stage_end's test metrics
    assert state.stages["disentangle"].gate  # gate weights per bin from stage 3's evals
    assert set(state.results()["stages"]) == set(STAGES)


def test_series_span_the_whole_run_in_epochs():
    state = RunState()
    state.feed(demo_events())
    xs, ys = state.metric_series("cold", "NDCG@10")
    n_evals = sum(len(state.stages[s].evals) for s in STAGES)
    assert len(xs) == n_evals and xs == sorted(xs) and len(set(xs)) == len(xs)
    losses = state.loss_series()
    assert {"total", "rec"} <= set(losses)
    total_x = losses["total"][0]
    assert total_x == sorted(total_x)  # stage offsets keep the run-wide axis increasing
    offsets = state.offsets()
    assert offsets["pretrain"] == 0 < offsets["align"] < offsets["disentangle"]


def test_half_done_run_then_worker_gone_is_interrupted():
    events = demo_events()
    cut = first_index(events, kind="eval", stage="align")
    now = events[cut]["time"] + 5
    state = RunState(clock=lambda: now)
    state.feed(events[: cut + 1])
    assert state.status == "running"
    assert state.stages["pretrain"].status == "done"
    assert state.stages["align"].status == "running"
    assert state.stages["disentangle"].status == "pending"
    assert state.stage_eta(state.stages["align"]) is not None
    assert state.elapsed() == now - events[0]["time"]
    state.mark_dead()
    assert state.status == "interrupted" and state.stages["align"].status == "interrupted"
    assert state.stage_elapsed(state.stages["align"]) > 0  # the time it worked, not 0:00


def test_a_resumed_epoch_replaces_its_steps_and_evals():
    events = demo_events()
    steps = [e for e in events if e["kind"] == "step" and e["stage"] == "pretrain"]
    state = RunState()
    state.feed(events[: events.index(steps[5]) + 1])
    before = len(state.stages["pretrain"].loss_points)
    # stop, then the worker resumes and replays from the start of the same epoch
    t = steps[5]["time"]
    replay = [e for e in steps if e["epoch"] == steps[5]["epoch"]]
    state.feed([
        {"time": t + 1, "stage": "", "kind": "error", "message": "stopped", "log": "log.txt", "interrupted": True},
        {"time": t + 1, "stage": "", "kind": "run_end", "status": "stopped", "seconds": 10.0},
    ])
    assert state.status == "stopped" and state.stages["pretrain"].status == "stopped"
    state.feed([{"time": t + 9, "stage": "", "kind": "resumed", "done": []},
                {"time": t + 9, "stage": "pretrain", "kind": "resumed", "epoch": replay[0]["epoch"], "step": 0},
                *[{**e, "time": t + 10} for e in replay]])
    assert state.status == "running" and state.stages["pretrain"].status == "running"
    assert len(state.stages["pretrain"].loss_points) == before  # replayed, not duplicated
    keys = [p[:2] for p in state.stages["pretrain"].loss_points]
    assert keys == sorted(keys)
    assert state.elapsed() >= 10.0


def test_results_table_rows_and_relative_change():
    results = {"stages": {
        "pretrain": {"test": {"overall": {"HR@10": 0.2, "NDCG@10": 0.1}, "warm": {}, "cold": {"HR@10": 0.05}}},
        "disentangle": {"test": {"overall": {"HR@10": 0.25, "NDCG@10": 0.1}, "cold": {"HR@10": 0.1}}},
    }}
    table = rows(results)
    assert [label for label, _ in table] == ["SR baseline", "PAD"]
    pad = dict(zip([(g, m) for g in ("overall", "warm", "cold") for m in ("HR@10", "NDCG@10")], table[1][1]))
    assert pad[("overall", "HR@10")][0] == 0.25 and abs(pad[("overall", "HR@10")][1] - 0.25) < 1e-12
    assert abs(pad[("cold", "HR@10")][1] - 1.0) < 1e-12  # cold HR doubled: +100%
    assert pad[("warm", "HR@10")] == (None, None)
    assert relative_change(0.1, 0.0) is None and fmt_change(0.123) == "+12.3%"
    assert headline(results)["stage"] == "disentangle"
    assert fmt_seconds(65) == "1:05" and fmt_seconds(3723) == "1:02:03" and fmt_seconds(None) == "—"


def test_read_columns_of_csv_tsv_jsonl_parquet(tmp_path):
    (tmp_path / "a.csv").write_text("userId,movieId,rating,timestamp\n1,2,4.0,99\n")
    (tmp_path / "b.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"reviewer": "u", "asin": "B1", "unixReviewTime": 1}) + "\n")
    assert read_columns(tmp_path / "a.csv") == ["userId", "movieId", "rating", "timestamp"]
    assert read_columns(tmp_path / "b.inter") == ["user_id:token", "item_id:token", "timestamp:float"]
    assert read_columns(tmp_path / "c.jsonl") == ["reviewer", "asin", "unixReviewTime"]
    cols = read_columns(tmp_path / "a.csv")
    assert [guess(cols, r) for r in ("user", "item", "time", "rating")] == ["userId", "movieId", "timestamp", "rating"]
    assert guess(read_columns(tmp_path / "b.inter"), "item") == "item_id:token"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"session": [1], "track": [2], "ts": [3]}), tmp_path / "d.parquet")
    cols = read_columns(tmp_path / "d.parquet")
    assert cols == ["session", "track", "ts"]
    assert [guess(cols, r) for r in ("user", "item", "time")] == ["session", "track", "ts"]


def test_detached_cli_call_returns_the_run_folder_and_lets_the_cli_finish(monkeypatch):
    import sys

    from padtui.screens import commands

    script = ("import time; print('run: /runs/demo-1', flush=True); time.sleep(0.3); "
              "print('worker pid 1 (detached). Watch: padtui attach /runs/demo-1', flush=True)")
    monkeypatch.setattr(commands, "padtui_command", lambda *a: [sys.executable, "-c", script])
    assert commands._start_detached(["run", "x.toml", "--detach"]) == "/runs/demo-1"  # the CLI exits 0


def test_refused_cli_call_raises_its_message(monkeypatch):
    import sys

    import pytest

    from padtui.screens import commands

    script = "import sys; print(\"error: x.toml: unknown key 'foo'.\", file=sys.stderr); sys.exit(2)"
    monkeypatch.setattr(commands, "padtui_command", lambda *a: [sys.executable, "-c", script])
    with pytest.raises(commands.CommandError, match="unknown key 'foo'"):
        commands._start_detached(["run", "x.toml", "--detach"])


def test_the_tui_never_imports_torch():
    import subprocess
    import sys

    code = ("import sys, padtui.app, padtui.screens.dataset_source, padtui.screens.llm_source; "
            "heavy = [m for m in ('torch', 'transformers', 'accelerate', 'datasets') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_keys_typed_while_the_tui_starts_are_discarded():
    """Keys typed before the app takes the terminal stay in its input queue and would reach the shell after
    quitting ("xyz?^[OQ"); run_app discards them before and after the app (a real pty here)."""
    import os
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: "starting up" while keys arrive, then what is left in its input queue
        try:
            time.sleep(0.5)
            from padtui.app import discard_typeahead

            discard_typeahead()
            ready, _, _ = select.select([0], [], [], 0.2)
            os.write(1, b"LEFT:" + (os.read(0, 100) if ready else b"") + b":END\n")
        finally:
            os._exit(0)
    os.write(fd, b"xyz")
    out = b""
    deadline = time.time() + 10
    while b":END" not in out and time.time() < deadline:
        try:
            out += os.read(fd, 1000)
        except OSError:
            break
    os.waitpid(pid, 0)
    assert b"LEFT::END" in out, out


def test_the_metric_panel_ignores_an_update_before_its_plots_exist():
    """An event can reach the monitor before the panel composed its plots, or after a quit tore them down."""
    from padtui.widgets.metric_panel import MetricPanel

    state = RunState()
    state.feed(demo_events())
    MetricPanel().show(state)  # not mounted: nothing to draw on, and no NoMatches


def test_a_poll_that_lands_after_the_monitor_is_gone_is_dropped():
    """The follower thread's last poll can reach the UI thread after a quit tore the monitor down."""
    from padtui.screens.monitor import MonitorScreen
    from test_tui_support import DEMO_RUN

    MonitorScreen(DEMO_RUN).ingest({"events": demo_events(), "alive": False})  # never mounted: no NoMatches
