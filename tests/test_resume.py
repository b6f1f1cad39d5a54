"""Resume that matches (issue 5.1): a worker killed with SIGKILL in stage 2 and resumed ends with exactly the
test metrics of an uninterrupted run, from an epoch checkpoint and from a mid-epoch one
(`train.checkpoint_every_steps`); events written before the crash stay a prefix of the final file; a run
folder has one owner, and a lock left by a dead worker is cleared.

The runs start through `padtui run --detach` (this process runs the CLI, the worker is a real subprocess, one
torch thread) and resume through `python -m padtui resume`, so the kill is a real SIGKILL of a real worker.
"""

from __future__ import annotations

import os
import signal
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY
from core.runs import RunFolder
from padtui import cli

ROOT = Path(__file__).resolve().parent.parent

STAGE2_LONG = ("stages.align.epochs=3", "stages.align.batch_size=8", "stages.disentangle.epochs=2")  # 25 steps/epoch


def tiny_llm(folder: Path) -> Path:
    """A character-level BERT (1 layer, hidden 16) and its tokenizer, saved as a local model folder."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    chars = list(string.ascii_lowercase + string.digits)
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + chars + ["##" + c for c in chars])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]").save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                        num_attention_heads=2, max_position_embeddings=128, pad_token_id=0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory) -> Path:
    return tiny_llm(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def one_thread(monkeypatch):
    """Workers inherit this environment: one torch thread each, so runs compare bit for bit."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")


def run_args(llm_dir: Path, runs_dir: Path, *extra: str) -> list[str]:
    sets = [*TINY, *STAGE2_LONG, f"llm.model={llm_dir}", *extra]
    return ["run", "demo", "--runs-dir", str(runs_dir), "--detach", *(a for s in sets for a in ("--set", s))]


def start_detached(args: list[str], capsys) -> tuple[RunFolder, int]:
    """`padtui run … --detach` in this process → (run folder, worker pid)."""
    assert cli.main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    run = RunFolder(Path(out.splitlines()[0].removeprefix("run: ")))
    pid = run.worker_pid()
    assert pid, f"no worker.pid in {run.path}"
    return run, pid


def reap(pid: int, timeout: float = 240.0) -> int:
    """Wait for our detached child and return its exit code (-signal if killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"worker {pid} still running after {timeout}s")


def wait_for_event(run: RunFolder, pid: int, match, timeout: float = 240.0) -> dict:
    """Poll events.jsonl (every 5 ms) for the first event `match` accepts; fail if the worker ends first."""
    deadline = time.monotonic() + timeout
    offset = 0
    while time.monotonic() < deadline:
        events, offset = run.read_events(offset)
        for event in events:
            if match(event):
                return event
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            raise AssertionError(f"worker ended (exit {os.waitstatus_to_exitcode(status)}) before the event:\n"
                                 + "\n".join(run.log_tail(30)))
        time.sleep(0.005)
    raise AssertionError("timed out waiting for an event")


def padtui_subprocess(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "padtui", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "120"}, timeout=300)


def test_metrics(run: RunFolder) -> dict:
    """Everything a run reports per stage except timings."""
    stages = run.results()["stages"]
    timing = {"seconds", "train_seconds", "eval_seconds"}
    return {name: {k: v for k, v in res.items() if k not in timing} for name, res in stages.items()}


test_metrics.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def uninterrupted(llm_dir, tmp_path_factory):
    """Metrics A: the same run, never interrupted (module-wide, so both resume variants compare to it)."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            mp.setenv(var, "1")
        mp.setenv("PADTUI_CACHE", str(tmp / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        code = cli.main(run_args(llm_dir, tmp / "runs"))
        assert code == 0
        run = next(RunFolder(p) for p in (tmp / "runs").iterdir())
        assert reap(run.worker_pid()) == 0, "\n".join(run.log_tail(30))
    assert run.status() == "done"
    return test_metrics(run)


@pytest.mark.parametrize("every", [0, 4], ids=["epoch-checkpoint", "mid-epoch-checkpoint"])
def test_sigkill_in_stage2_then_resume_matches_uninterrupted(every, uninterrupted, llm_dir, runs_dir, one_thread,
                                                            capsys):
    run, pid = start_detached(run_args(llm_dir, runs_dir, f"train.checkpoint_every_steps={every}"), capsys)
    # kill at stage 2's first checkpoint: mid-epoch 1 (every 4 steps) or the end of epoch 1
    wait_for_event(run, pid, lambda e: e["stage"] == "align" and e["kind"] == "checkpoint")
    os.kill(pid, signal.SIGKILL)
    assert reap(pid) == -signal.SIGKILL
    before = run.events_path.read_bytes()
    events = run.events()
    kinds = [(e["stage"], e["kind"]) for e in events]
    assert ("align", "stage_end") not in kinds, "the kill came too late: stage 2 had already ended"
    assert ("pretrain", "stage_end") in kinds
    checkpoint = [e for e in events if e["stage"] == "align" and e["kind"] == "checkpoint"][-1]
    if every:
        assert "step" in checkpoint, "the kill came too late: the last checkpoint was at the end of an epoch"
    assert run.status() == "interrupted"  # worker.pid names a dead process

    proc = padtui_subprocess("resume", str(run.path))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr

    assert run.events_path.read_bytes().startswith(before), "events written before the crash were changed"
    after = run.read_events(len(before))[0]
    resumed = [e for e in after if e["kind"] == "resumed"]
    assert resumed[0]["stage"] == "" and resumed[0]["done"] == ["pretrain"]
    stage_resume = next(e for e in resumed if e["stage"] == "align")  # from the last checkpoint before the kill
    if every:
        assert (stage_resume["epoch"], stage_resume["step"]) == (checkpoint["epoch"], checkpoint["step"])
    else:
        assert (stage_resume["epoch"], stage_resume["step"]) == (checkpoint["epoch"] + 1, 0)
    assert [e["stage"] for e in after if e["kind"] == "stage_end"] == ["align", "disentangle"]
    assert after[-1]["kind"] == "run_end" and after[-1]["status"] == "done"
    assert run.status() == "done" and run.worker_pid() is None
    assert any("stale lock" in line for line in run.log_tail(200))

    resumed_metrics = test_metrics(run)
    assert set(resumed_metrics) == {"pretrain", "align", "disentangle"}
    for stage in ("pretrain", "align", "disentangle"):
        assert resumed_metrics[stage] == uninterrupted[stage], f"stage {stage} differs after resume"


# ───────────────────────────── one owner per run folder ─────────────────────────────


@pytest.fixture
def created_run(tiny_cfg, runs_dir) -> RunFolder:
    """A new run folder, opened the way its worker opens it (it may write events and take the lock)."""
    from core.pipeline import create_run
    from core.run_writer import RunWriter

    return RunWriter(create_run(tiny_cfg(), runs_dir, ["pretrain"]).path)


def test_second_worker_on_a_live_run_is_refused(created_run, capsys):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        created_run.pid_path.write_text(f"{owner.pid}\n")
        for args in (["worker", str(created_run.path)], ["resume", str(created_run.path)]):
            assert cli.main(args) == 2, args
            err = " ".join(capsys.readouterr().err.split())  # rich wraps at 80 columns
            assert f"pid {owner.pid}" in err and "padtui attach" in err, err
            assert "Traceback" not in err
        assert created_run.worker_pid() == owner.pid  # the owner keeps its lock
        assert created_run.events() == []  # the refused worker wrote nothing
    finally:
        owner.kill()
        owner.wait()


def test_stale_lock_from_a_dead_pid_is_cleared(created_run):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    created_run.pid_path.write_text(f"{dead.pid}\n")
    assert created_run.status() == "created"  # not "running": the pid is dead
    created_run.acquire()
    assert created_run.worker_pid() == os.getpid()
    assert any(f"stale lock: worker pid {dead.pid}" in line for line in created_run.log_tail())
    created_run.release()
    assert not created_run.pid_path.exists()


def test_a_line_torn_by_a_crash_does_not_swallow_the_next_event(created_run):
    created_run.emit("run_start", "", seed=1)
    with open(created_run.events_path, "a") as fh:
        fh.write('{"time": 1, "stage": "pretrain", "ki')  # SIGKILL in the middle of a write
    created_run.emit("resumed", "", done=[])
    kinds = [e["kind"] for e in created_run.events()]
    assert kinds == ["run_start", "resumed"]
