"""A run from start to end: folder, manifest, data, LLM table, stages, results — resumable at every step.

`create_run` writes the folder (config.toml first), `execute` runs the stages that are not done yet. Both the
headless CLI and the detached worker the TUI starts end up in `execute`; it talks to the world only through
the run folder.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core.config import STAGES, RunConfig, config_to_toml, load_saved_config
from core.data import SeqData, load_data
from core.engine import eval_inputs, load_weights, train_stage
from core.errors import InputError, Interrupted, RunFailure
from core.runs import RunFolder, atomic_write_json, atomic_write_text, check_writable, new_run_path
from core.stages import BUILDERS


def create_run(cfg: RunConfig, runs_dir: Path, stages: list[str], path: Path | None = None) -> RunFolder:
    check_writable(runs_dir)
    run = RunFolder(path or new_run_path(runs_dir, cfg.preset))
    run.path.mkdir(parents=True, exist_ok=False)
    atomic_write_text(run.config_path, config_to_toml(cfg))
    atomic_write_json(run.path / "stages.json", stages)
    return run


def run_stages(run: RunFolder) -> list[str]:
    import json

    try:
        return json.loads((run.path / "stages.json").read_text())
    except (OSError, ValueError):
        return list(STAGES)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def protocol(cfg: RunConfig, data: SeqData) -> dict:
    return {
        "split": "leave-one-out (last = test, second-last = validation)",
        "order": "by time, ties keep source order",
        "ranking": f"full, all {data.n_items} items",
        "mask_history": cfg.eval.mask_history,
        "ties": "pessimistic",
        "ks": cfg.eval.ks,
        "select_metric": f"valid {cfg.eval.select_metric}",
        "n_bins": data.n_bins,
        "cold": f"test targets in bin {data.n_bins} (equal-interaction-mass bins over training frequency)",
        "min_user_interactions": cfg.dataset.filter.min_user_interactions,
        "min_rating": cfg.dataset.filter.min_rating,
        "users": data.n_users,
        "items": data.n_items,
    }


def library_versions() -> dict:
    import accelerate
    import datasets
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "accelerate": accelerate.__version__}


class RunContext:
    """What the stages and the loop share: config, data, accelerator, run folder, events."""

    def __init__(self, run: RunFolder, cfg: RunConfig, accelerator, data: SeqData):
        self.run, self.cfg, self.accelerator, self.data = run, cfg, accelerator, data
        self.stop_requested = False
        self.user_items = [np.unique(data.train_part(u)) for u in range(data.n_users)]
        self.item_bin_dev = torch.from_numpy(data.item_bin).to(accelerator.device)
        self._eval: dict[str, dict] = {}
        self._llm: torch.Tensor | None = None
        self._process = None

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def emit(self, kind: str, stage: str = "", **data) -> None:
        if self.main:
            self.run.emit(kind, stage, **data)

    def log(self, message: str) -> None:
        if self.main:
            self.run.log(message)

    def resources(self) -> dict:
        out = {}
        try:
            import psutil

            self._process = self._process or psutil.Process()
            out["rss_mb"] = round(self._process.memory_info().rss / 2**20, 1)
        except Exception:
            pass
        if torch.cuda.is_available():
            out["gpu_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return out

    def eval_data(self, split: str) -> dict:
        if split not in self._eval:
            self._eval[split] = eval_inputs(self.data, self.cfg.backbone.max_len, split)
        return self._eval[split]

    def trained(self, stage: str, model):
        load_weights(model, self.run.checkpoints / stage / "best.safetensors")
        return model

    def llm_table(self) -> torch.Tensor:
        """LLM item embeddings [N+1, D], computed once per run (cached across runs by fingerprint)."""
        if self._llm is None:
            from transformers.utils import logging as hf_logging

            from core.text import embed_items

            hf_logging.disable_progress_bar()  # progress goes to events, not to the worker's stderr

            t0 = time.perf_counter()
            last = [0.0]

            def progress(done: int, total: int, items_per_s: float) -> None:
                now = time.perf_counter()
                if now - last[0] > 0.5 or done == total:
                    last[0] = now
                    self.emit("step", "embed", items_done=done, items_total=total, items_per_s=items_per_s,
                              eta=(total - done) / max(items_per_s, 1e-9), **self.resources())

            self.log(f"LLM item embeddings: {self.cfg.llm.model} ({self.cfg.llm.pooling} pooling)")
            self._llm = embed_items(self.data.item_texts, self.cfg.llm, self.cfg.dataset.items.text,
                                    self.data.item_map_hash, device=self.accelerator.device,
                                    accelerator=self.accelerator, progress=progress)
            self.log(f"LLM table {tuple(self._llm.shape)} ready in {time.perf_counter() - t0:.1f}s")
        return self._llm


def _install_signal_handlers(ctx: RunContext) -> None:
    def handler(signum, frame):
        ctx.stop_requested = True
        ctx.log(f"received {signal.Signals(signum).name}: saving a checkpoint and stopping")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped SSH link must not stop the run


def make_accelerator(cfg: RunConfig):
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    mp = cfg.train.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    acc = Accelerator(mixed_precision=mp)
    set_seed(cfg.seed)
    return acc


def execute(run: RunFolder, resume: bool = False) -> dict:
    """Run (or continue) every stage of the run that has no result yet. Returns results.json's content."""
    cfg = load_saved_config(run.config_path)
    stages = run_stages(run)
    acc = make_accelerator(cfg)
    if acc.is_main_process:
        run.acquire()
    t0 = time.perf_counter()
    ctx = None
    try:
        data = load_data(cfg.dataset, cfg.stages.disentangle.n_bins, log=run.log)
        ctx = RunContext(run, cfg, acc, data)
        _install_signal_handlers(ctx)
        results = run.results() if resume else {}
        done = [s for s in stages if s in results.get("stages", {})]
        if resume:
            ctx.emit("resumed", "", done=done)
        else:
            ctx.emit("run_start", "", run=run.name, preset=cfg.preset, seed=cfg.seed, stages=stages,
                     device=str(acc.device), num_processes=acc.num_processes)
        if ctx.main:
            atomic_write_json(run.manifest_path, {
                "run": run.name, "preset": cfg.preset, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "protocol": protocol(cfg, data), "dataset": {"fingerprint": data.fingerprint, "stats": data.stats()},
                "item_map_hash": data.item_map_hash,
                "llm": {"model": cfg.llm.model, "revision": cfg.llm.revision, "pooling": cfg.llm.pooling},
                "versions": library_versions(), "git_commit": git_commit(),
                "device": str(acc.device), "num_processes": acc.num_processes,
            })
        results.setdefault("protocol", protocol(cfg, data))
        results.setdefault("stages", {})
        for name in stages:
            if name in results["stages"]:
                continue
            ctx.log(f"stage {name}: start")
            stage = BUILDERS[name](ctx)
            results["stages"][name] = train_stage(ctx, stage)
            if ctx.main:
                atomic_write_json(run.results_path, results)
        ctx.emit("run_end", "", status="done", seconds=time.perf_counter() - t0)
        ctx.log(f"run finished in {time.perf_counter() - t0:.0f}s")
        return results
    except Interrupted as exc:
        if acc.is_main_process:
            run.emit("error", "", message=str(exc), log=str(run.log_path), interrupted=True)
            run.emit("run_end", "", status="stopped", seconds=time.perf_counter() - t0)
            run.log(f"{exc}; resume with `padtui resume {run.path}`")
        raise
    except (RunFailure, InputError) as exc:
        if acc.is_main_process:
            run.emit("error", "", message=str(exc), log=str(run.log_path), interrupted=False)
            run.emit("run_end", "", status="failed", seconds=time.perf_counter() - t0)
            run.log(f"failed: {exc}")
        raise
    except Exception as exc:
        if acc.is_main_process:
            import traceback

            run.log("crashed:\n" + traceback.format_exc())
            run.emit("error", "", message=f"{type(exc).__name__}: {exc}", log=str(run.log_path), interrupted=False)
            run.emit("run_end", "", status="failed", seconds=time.perf_counter() - t0)
        raise
    finally:
        if acc.is_main_process:
            run.release()


def detach_worker(path: Path, resume: bool = False, num_processes: int = 1) -> int:
    """Start `python -m padtui worker RUN` in its own session (survives the terminal / SSH link); with several
    processes through `accelerate launch`. The worker's pid is written to worker.pid before returning, so a
    reader never sees a launched run as interrupted."""
    path = Path(path)
    cmd = [sys.executable, "-m", "padtui", "worker", str(path)]
    if num_processes > 1:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
               "-m", "padtui", "worker", str(path)]
    if resume:
        cmd.append("--resume")
    with open(path / "worker.out", "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=os.getcwd(), env=os.environ.copy())
    if (path / "config.toml").is_file():
        atomic_write_text(path / "worker.pid", f"{proc.pid}\n")
    return proc.pid
