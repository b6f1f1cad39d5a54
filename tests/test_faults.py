"""Faults (issue 5.2): SIGTERM / SIGINT checkpoint and stop cleanly; a NaN loss stops the stage naming stage,
epoch and loss component and keeps the good checkpoints; out of memory suggests the batch size to use (and
with `train.auto_batch` halves it and retries once); a full disk gives a clear message and leaves nothing
half-written. All on the tiny synthetic config, stage 1 only (4 steps per epoch)."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY
from core import engine
from core.config import load_saved_config
from core.errors import RunFailure
from core.runs import RunFolder
from padtui import cli


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """padtui.cli.main in this process → (exit code, stdout, stderr with whitespace collapsed)."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def stage1(runs_dir: Path, *extra: str, detach: bool = False) -> list[str]:
    sets = [*TINY, "stages.pretrain.epochs=3", *extra]
    return ["run", "demo", "--stages", "pretrain", "--runs-dir", str(runs_dir), *(["--detach"] if detach else []),
            *(a for s in sets for a in ("--set", s))]


def only_run(runs_dir: Path) -> RunFolder:
    (path,) = runs_dir.iterdir()
    return RunFolder(path)


def fail_on_call(n: int, exc_factory, real):
    """A wrapper of `real` that raises exc_factory() on its n-th call (1-based) and only then."""
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise exc_factory()
        return real(*args, **kwargs)

    return wrapper


# ───────────────────────────── SIGTERM / SIGINT ─────────────────────────────


def test_sigterm_checkpoints_stops_cleanly_and_resumes(runs_dir, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, out, _ = run_cli(capsys, *stage1(runs_dir, "stages.pretrain.epochs=6", "stages.pretrain.batch_size=16",
                                           detach=True))
    assert code == 0
    run = only_run(runs_dir)
    pid = run.worker_pid()
    deadline = time.monotonic() + 120
    while not any(e["kind"] == "step" and e["stage"] == "pretrain" for e in run.events()):
        assert time.monotonic() < deadline and not os.waitpid(pid, os.WNOHANG)[0], run.log_tail(30)
        time.sleep(0.01)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1  # a stopped run: not a crash, not a success

    events = run.events()
    assert [e["kind"] for e in events[-3:]] == ["checkpoint", "error", "run_end"]
    assert events[-3]["stage"] == "pretrain" and events[-3]["step"] > 0  # saved mid-epoch, at once
    assert events[-2]["interrupted"] is True and "stopped in stage 'pretrain'" in events[-2]["message"]
    assert events[-1]["status"] == "stopped"
    assert run.status() == "stopped" and run.worker_pid() is None
    assert (run.checkpoints / "pretrain" / "last" / "trainer.json").is_file()
    assert any("received SIGTERM" in line for line in run.log_tail(50))

    before = len(events)
    code, out, err = run_cli(capsys, "resume", str(run.path))
    assert code == 0, err
    after = run.events()[before:]
    assert after[0]["kind"] == "resumed" and after[1]["kind"] == "resumed" and after[1]["step"] > 0
    assert "pretrain" in run.results()["stages"]
    assert run.status() == "done"


@pytest.mark.parametrize("signals", [1, 2], ids=["once", "twice"])
def test_sigint_in_a_foreground_run(signals, runs_dir, capsys, monkeypatch):
    """Ctrl-C once: checkpoint, then stop. Twice: stop at once, the last checkpoint kept as it was."""
    handler = signal.getsignal(signal.SIGINT)
    calls = [0]
    real_add = engine.Progress.add

    def add(self, losses):
        real_add(self, losses)
        calls[0] += 1
        if calls[0] == 6:  # epoch 2, step 2
            for _ in range(signals):
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(engine.Progress, "add", add)
    code, out, err = run_cli(capsys, *stage1(runs_dir))
    assert code == 1, err
    assert "stopped" in err and "padtui resume" in err and "Traceback" not in err
    run = only_run(runs_dir)
    events = run.events()
    assert events[-1]["kind"] == "run_end" and events[-1]["status"] == "stopped"
    assert events[-2]["kind"] == "error" and events[-2]["interrupted"] is True
    state = json.loads((run.checkpoints / "pretrain" / "last" / "trainer.json").read_text())
    if signals == 1:
        assert (state["epoch"], state["step"]) == (1, 2)  # checkpoint at the step the signal came in
    else:
        assert "received twice" in events[-2]["message"]
        assert (state["epoch"], state["step"]) == (1, 0)  # the epoch-1 checkpoint, untouched
    assert signal.getsignal(signal.SIGINT) is handler  # the run put the caller's handler back
    assert run.worker_pid() is None


# ───────────────────────────── NaN / inf loss ─────────────────────────────


def test_nan_loss_names_stage_epoch_component_and_keeps_the_checkpoint(runs_dir, capsys, monkeypatch):
    real = engine.fused_catalogue_ce  # the ce loss of every stage
    calls = [0]

    def fused_catalogue_ce(*args, **kwargs):
        calls[0] += 1
        total, rec, own = real(*args, **kwargs)
        nan = float("nan") if calls[0] == 6 else 1.0  # epoch 2, step 2
        return total * nan, rec * nan, own

    monkeypatch.setattr(engine, "fused_catalogue_ce", fused_catalogue_ce)
    code, out, err = run_cli(capsys, *stage1(runs_dir))
    assert code == 1
    assert "stage 'pretrain', epoch 2, step 2: loss component 'rec' is nan" in err, err
    assert "stages.pretrain.lr" in err and "Traceback" not in err
    run = only_run(runs_dir)
    assert (run.checkpoints / "pretrain" / "best.safetensors").is_file()
    state = json.loads((run.checkpoints / "pretrain" / "last" / "trainer.json").read_text())
    assert (state["epoch"], state["best_epoch"]) == (1, 1)
    assert run.status() == "failed"
    assert [e["kind"] for e in run.events()[-2:]] == ["error", "run_end"]


def test_real_divergence_is_caught(runs_dir, capsys):
    """An absurd learning rate: the loss really becomes inf / nan."""
    code, out, err = run_cli(capsys, *stage1(runs_dir, "stages.pretrain.lr=1e30", "stages.pretrain.max_grad_norm=0"))
    assert code == 1, err
    assert "stage 'pretrain', epoch" in err and "loss component 'rec'" in err and "Traceback" not in err


# ───────────────────────────── out of memory ─────────────────────────────


def cuda_oom():
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)")


def test_oom_with_auto_batch_halves_and_retries_once(runs_dir, capsys, monkeypatch):
    monkeypatch.setattr(engine.StageModule, "forward",
                        fail_on_call(6, cuda_oom, engine.StageModule.forward))  # epoch 2, step 2
    code, out, err = run_cli(capsys, *stage1(runs_dir, "train.auto_batch=true"))
    assert code == 0, err
    run = only_run(runs_dir)
    assert any("halves it to 32" in line for line in run.log_tail(50))
    assert load_saved_config(run.config_path).stages.pretrain.batch_size == 32  # a later resume uses it too
    starts = [e for e in run.events() if e["kind"] in ("stage_start", "resumed") and e["stage"] == "pretrain"]
    assert [e["kind"] for e in starts] == ["stage_start", "resumed", "stage_start"]
    assert starts[1]["epoch"] == 2  # retried from the epoch-1 checkpoint, not from scratch
    assert run.results()["stages"]["pretrain"]["epochs_run"] == 3


def test_oom_without_auto_batch_suggests_the_batch_size(runs_dir, capsys, monkeypatch):
    monkeypatch.setattr(engine.StageModule, "forward", fail_on_call(2, cuda_oom, engine.StageModule.forward))
    code, out, err = run_cli(capsys, *stage1(runs_dir))
    assert code == 1
    assert "stage 'pretrain': out of" in err and "memory with stages.pretrain.batch_size = 64" in err, err
    assert "stages.pretrain.batch_size = 32" in err and "train.auto_batch = true" in err
    assert "Traceback" not in err
    assert only_run(runs_dir).status() == "failed"


def test_oom_in_evaluation_names_the_eval_batch_size(runs_dir, capsys, monkeypatch):
    def always(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(engine, "target_ranks", always)
    code, out, err = run_cli(capsys, *stage1(runs_dir, "train.auto_batch=true"))
    assert code == 1
    assert "eval.batch_size = 256 (already halved once by train.auto_batch)" in err, err
    assert "eval.batch_size = 128" in err


# ───────────────────────────── full disk ─────────────────────────────


def test_disk_full_mid_run_is_a_clear_message_and_nothing_is_half_written(runs_dir, capsys, monkeypatch):
    def enospc():
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "trainer.json")

    monkeypatch.setattr(engine, "atomic_write_json", fail_on_call(2, enospc, engine.atomic_write_json))
    code, out, err = run_cli(capsys, *stage1(runs_dir))
    assert code == 1
    assert "No space left on device" in err and "padtui resume" in err and "Traceback" not in err
    run = only_run(runs_dir)
    leftovers = [p for p in run.path.rglob("*") if p.name.endswith((".tmp", ".old"))]
    assert not leftovers, leftovers
    state = json.loads((run.checkpoints / "pretrain" / "last" / "trainer.json").read_text())
    assert state["epoch"] == 1  # the last complete checkpoint, as it was
    assert run.events_path.read_bytes().endswith(b"\n")
    assert run.status() == "failed"
    load_saved_config(run.config_path)


def test_library_wrapped_disk_errors_are_recognised(tmp_path):
    from core.pipeline import disk_failure

    run = RunFolder(tmp_path)
    torch_error = RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0: "
                               "PytorchStreamWriter failed writing file data/0: file write failed")
    for exc in (torch_error, OSError(errno.EROFS, "Read-only file system", str(tmp_path / "x")),
                OSError(errno.ENOSPC, "No space left on device")):
        failure = disk_failure(run, exc)
        assert isinstance(failure, RunFailure) and "padtui resume" in str(failure), exc
    assert disk_failure(run, ValueError("bad shape")) is None


def test_a_checkpoint_that_does_not_fit_names_the_parameters(tmp_path):
    import torch
    from torch import nn

    from core.engine import load_weights, save_weights
    from core.errors import RunFailure

    path = tmp_path / "best.safetensors"
    saved = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    save_weights(saved, path)
    with pytest.raises(RunFailure) as info:
        load_weights(nn.Sequential(nn.Linear(4, 16), nn.Linear(16, 2), nn.ReLU(), nn.Linear(2, 2)), path)
    message = str(info.value)
    assert "missing 3.weight" in message and "0.bias has shape (8,), the model (16,)" in message
    assert "and 2 more" in message and str(path) in message
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    load_weights(model, path)  # a fitting checkpoint loads
    assert torch.equal(model[0].weight, saved[0].weight) and torch.equal(model[1].bias, saved[1].bias)
