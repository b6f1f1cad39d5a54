"""A run from start to end: folder, manifest, data, LLM table, stages, results — resumable at every step.

`create_run` writes the folder (config.toml first), `execute` runs the stages that are not done yet. Both the
headless CLI and the detached worker the TUI starts end up in `execute`; it talks to the world only through
the run folder.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import torch

from core.config import STAGES, RunConfig, config_to_toml, load_saved_config
from core.data import SeqData, load_data
from core.engine import STAGE_INDEX, eval_inputs, is_out_of_memory, load_weights, train_stage
from core.errors import InputError, Interrupted, ResumeRefused, RunFailure
from core import trackers
from core.atomic import atomic_write_file, atomic_write_json, atomic_write_text
from core.run_writer import RunWriter
from core.runs import RunFolder, check_writable, new_run_path
from core.stages import BUILDERS

T = TypeVar("T")


def create_run(cfg: RunConfig, runs_dir: Path, stages: list[str], path: Path | None = None,
               reuse: Path | None = None) -> RunFolder:
    """A new run folder. `reuse`: a finished run whose stages with identical inputs are copied, not trained."""
    check_writable(runs_dir)
    run = RunFolder(path or new_run_path(runs_dir, cfg.preset))
    run.path.mkdir(parents=True, exist_ok=False)
    try:
        atomic_write_json(run.path / "stages.json", stages)
        if reuse is not None:
            atomic_write_json(run.path / "reuse.json", {"from": str(Path(reuse).resolve())})
        atomic_write_text(run.config_path, config_to_toml(cfg))  # last: a folder with config.toml is a run
    except OSError as exc:
        shutil.rmtree(run.path, ignore_errors=True)
        raise InputError(f"{run.path}: cannot write the run folder ({exc.strerror or exc}). Free space in "
                         f"{runs_dir} or pass --runs-dir to another folder.") from None
    return run


def launched_processes() -> int:
    """How many processes `accelerate launch` (or torchrun) started for this command; 1 for a plain one."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def _cpu_only() -> bool:
    """Several processes on a machine without a GPU (torchrun on CPUs): Accelerate only joins them (gloo)
    when told it runs on the CPU; with one process, or with GPUs, Accelerate decides as usual."""
    return launched_processes() > 1 and not torch.cuda.is_available()


def on_main_process(make: Callable[[], T]) -> T:
    """`make()` on the main process only, its result handed to every process.

    Under `accelerate launch` every process runs the same `padtui run`; each would otherwise create its own run
    folder, and the other ranks would look for stage 1's checkpoint in a folder nobody wrote. An InputError on
    the main process is raised on every process, so none is left waiting."""
    if launched_processes() <= 1:
        return make()
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState(cpu=_cpu_only())  # joins the launcher's process group; the Accelerator reuses it
    box: list = [None]
    if state.is_main_process:
        try:
            box[0] = ("ok", make())
        except InputError as exc:
            box[0] = ("error", str(exc))
    broadcast_object_list(box, from_process=0)
    status, value = box[0]
    if status == "error":
        raise InputError(value)
    return value


def run_stages(run: RunFolder) -> list[str]:
    try:
        return json.loads((run.path / "stages.json").read_text())
    except (OSError, ValueError):
        return list(STAGES)


# ───────────────────────────── reusing finished stages ─────────────────────────────

# names and display fields, logging and checkpoint cadence: they never change what a stage learns
_NEUTRAL = {"preset", "description", "params", "log_every_steps", "checkpoint_every_steps", "num_workers", "threads"}


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _NEUTRAL}
    return value


def stage_inputs(cfg: RunConfig, stage: str) -> dict:
    """Everything a stage's checkpoint and test numbers depend on: its own settings and every earlier stage's,
    the data, the backbone, the seed, training and evaluation settings (and the LLM from align on)."""
    d = cfg.to_dict()
    order = list(STAGES)[: STAGES.index(stage) + 1]
    out = {"seed": d["seed"], "dataset": d["dataset"], "backbone": d["backbone"], "eval": d["eval"],
           "train": d["train"], "n_bins": d["stages"]["disentangle"]["n_bins"],
           "stages": {s: d["stages"][s] for s in order}}
    if stage != "pretrain":
        out["llm"] = d["llm"]
    return _strip(out)


def first_difference(a, b, prefix: str = "") -> str | None:
    """The first dotted key where two nested dicts differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else f"{prefix[:-1]} ({b!r} there, {a!r} here)"


def reusable_stages(cfg: RunConfig, stages: list[str], source: RunFolder) -> tuple[list[str], str]:
    """The leading stages of `stages` that `source` finished with exactly the inputs `cfg` gives them, and why
    the next one cannot be reused ("" when all can)."""
    try:
        source_cfg = load_saved_config(source.config_path)
    except InputError as exc:
        return [], str(exc)
    done = source.results().get("stages", {})
    out = []
    for name in stages:
        if name not in done or not (source.checkpoints / name / "best.safetensors").is_file():
            return out, f"{name} is not finished there"
        diff = first_difference(stage_inputs(cfg, name), stage_inputs(source_cfg, name))
        if diff:
            return out, f"{name} differs at {diff}"
        out.append(name)
    return out, ""


def adopt_stages(ctx: "RunContext", source: RunFolder, results: dict) -> list[str]:
    """Copy the reusable stages' best weights and results from `source` into this run (an ablation that only
    changes stage 3 trains only stage 3). Each adopted stage gets a stage_end event that says where it came from."""
    adopted, why = reusable_stages(ctx.cfg, run_stages(ctx.run), source)
    if why:
        ctx.log(f"reuse from {source.path}: {why}; training from there")
    done = source.results()["stages"] if adopted else {}
    for name in adopted:
        if ctx.main:
            best = source.checkpoints / name / "best.safetensors"
            atomic_write_file(ctx.run.checkpoints / name / "best.safetensors", lambda tmp: shutil.copyfile(best, tmp))
        r = {**done[name], "reused_from": str(source.path)}
        results["stages"][name] = r
        ctx.log(f"stage {name}: reused from {source.path} (same inputs)")
        ctx.emit("stage_end", name, best_epoch=r.get("best_epoch"), valid=r.get("valid"), test=r.get("test"),
                 seconds=0.0, status="done", reused_from=str(source.path),
                 **({"gate": r["gate"]} if "gate" in r else {}))
    if ctx.main and adopted:
        atomic_write_json(ctx.run.results_path, results)
    return adopted


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
        "fit_split": f"validation items of {cfg.eval.fit_share:.0%} of the users (fixed draw), for held-out fitting; "
                     f"the others select models",
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


class StopSignal:
    """SIGTERM / SIGINT ask the loop to save a checkpoint and stop (it checks `requested` after every step);
    a second signal stops at once, keeping the last checkpoint. SIGHUP is ignored: a dropped SSH link must
    not stop the run."""

    def __init__(self, run: RunWriter):
        self.run = run
        self.requested = False
        self._saved: dict = {}

    def __call__(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            raise Interrupted(f"{name} received twice: stopped at once, the last checkpoint is kept")
        self.requested = True
        try:
            self.run.log(f"received {name}: saving a checkpoint and stopping")
        except OSError:  # a full disk must not turn the signal into a crash
            pass

    def check(self, where: str) -> None:
        if self.requested:
            raise Interrupted(f"stopped {where}")

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers
        handlers = {signal.SIGTERM: self, signal.SIGINT: self}
        if hasattr(signal, "SIGHUP"):
            handlers[signal.SIGHUP] = signal.SIG_IGN
        for sig, handler in handlers.items():
            self._saved[sig] = signal.signal(sig, handler)

    def restore(self) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()


class RunContext:
    """What the stages and the loop share: config, data, accelerator, run folder, events."""

    def __init__(self, run: RunWriter, cfg: RunConfig, accelerator, data: SeqData, stop: StopSignal | None = None):
        self.run, self.cfg, self.accelerator, self.data = run, cfg, accelerator, data
        self.stop = stop or StopSignal(run)
        self.user_items = [np.unique(data.train_part(u)) for u in range(data.n_users)]
        self.item_bin_dev = torch.from_numpy(data.item_bin).to(accelerator.device)
        self._eval: dict[str, dict] = {}
        self._llm: torch.Tensor | None = None
        self._process = None

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def stop_requested(self) -> bool:
        return self.stop.requested

    def emit(self, kind: str, stage: str = "", **data) -> None:
        if self.main:
            self.run.emit(kind, stage, **data)
            if self.cfg.train.log_with and (numbers := trackers.scalars(kind, stage, data)):
                values, step = numbers
                self.accelerator.log(values, step=step)

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
            self._eval[split] = eval_inputs(self.data, self.cfg.backbone.max_len, split, self.cfg.eval.fit_share)
        return self._eval[split]

    def text_knn(self) -> dict:
        """The training-free text kNN's valid and test metrics (core.knn), for the per-bin evidence."""
        from core.knn import text_knn_metrics

        ev = self.cfg.eval
        bins = torch.from_numpy(self.data.item_bin)
        return {split: text_knn_metrics(self.llm_table(), self.eval_data(split), bins, self.data.n_bins, ev.ks,
                                        ev.mask_history, batch_size=ev.batch_size, chunk=ev.item_chunk)
                for split in ("valid", "test")}

    def trained(self, stage: str, model):
        load_weights(model, self.run.checkpoints / stage / "best.safetensors")
        return model

    def llm_table(self) -> torch.Tensor:
        """LLM item embeddings [N+1, D], computed once per run (cached across runs by fingerprint). Leaves the
        RNG as it found it: computed or read from the cache, the stage's model initialisation is the same."""
        if self._llm is None:
            from transformers.utils import logging as hf_logging

            from core.text import embed_items

            hf_logging.disable_progress_bar()  # progress goes to events, not to the worker's stderr

            t0 = time.perf_counter()
            last = [0.0]

            def progress(done: int, total: int, items_per_s: float) -> None:
                self.stop.check("while embedding the items")
                now = time.perf_counter()
                if now - last[0] > 0.5 or done == total:
                    last[0] = now
                    self.emit("step", "embed", items_done=done, items_total=total, items_per_s=items_per_s,
                              eta=(total - done) / max(items_per_s, 1e-9), **self.resources())

            self.log(f"LLM item embeddings: {self.cfg.llm.model} ({self.cfg.llm.pooling} pooling)")
            with torch.random.fork_rng():
                self._llm = embed_items(self.data.item_texts, self.cfg.llm, self.cfg.dataset.items.text,
                                        self.data.item_map_hash, device=self.accelerator.device,
                                        accelerator=self.accelerator, progress=progress, log=self.log)
            self.log(f"LLM table {tuple(self._llm.shape)} ready in {time.perf_counter() - t0:.1f}s")
        return self._llm


def make_accelerator(cfg: RunConfig, trackers_dir: Path | None = None):
    """The run's Accelerator; with `train.log_with` and a folder, its experiment trackers too (core.trackers)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    mp = cfg.train.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # Under DDP every rank builds the same buffers (the frozen LLM table, the item bins) from the same files;
    # broadcasting them from rank 0 before every step (DDP's default) would resend the whole LLM table —
    # 300 MB at 200,000 items — each step for nothing.
    # (torch ≥ 2.13 calls the flag deprecated but says to keep it until `init_sync_buffers` exists: its
    # replacement `forward_sync_buffers`, not offered by Accelerate, would still send the table at start-up.)
    warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    tracking = trackers.prepare(cfg.train.log_with, trackers_dir) if trackers_dir is not None else {}
    acc = Accelerator(mixed_precision=mp, kwargs_handlers=[ddp], cpu=_cpu_only(), **tracking)
    set_seed(cfg.seed)
    return acc


def seed_stage(cfg: RunConfig, name: str) -> None:
    """Every stage starts from its own seed, whatever ran before it in this process (a resumed run skips the
    finished stages, yet builds the next one exactly as the uninterrupted run did)."""
    from accelerate.utils import set_seed

    set_seed(cfg.seed * 10 + STAGE_INDEX[name])


def _oom_knob(ctx: RunContext, name: str, exc: BaseException) -> tuple[str, int]:
    """The batch size to lower: the evaluation's or the LLM's when the OOM hit there, else the stage's."""
    frames = {frame.name for frame in traceback.extract_tb(exc.__traceback__)}
    if "evaluate" in frames:
        return "eval.batch_size", ctx.cfg.eval.batch_size
    if "embed_items" in frames:
        return "llm.batch_size", ctx.cfg.llm.batch_size
    return f"stages.{name}.batch_size", getattr(ctx.cfg.stages, name).batch_size


def _set_knob(ctx: RunContext, knob: str, value: int) -> None:
    """Change one batch size in the run's config and in config.toml, so a later resume uses it too."""
    *path, key = knob.split(".")
    section = ctx.cfg
    for part in path:
        section = getattr(section, part)
    setattr(section, key, value)
    if ctx.main:
        atomic_write_text(ctx.run.config_path, config_to_toml(ctx.cfg))


def run_stage(ctx: RunContext, name: str) -> dict:
    """Build and train one stage. Out of memory: a message naming the batch size to try; with
    train.auto_batch = true, halve that batch size and retry once (from the stage's last checkpoint)."""
    retried = False
    while True:
        seed_stage(ctx.cfg, name)
        try:
            return train_stage(ctx, BUILDERS[name](ctx))
        except Exception as exc:  # noqa: BLE001 — only out-of-memory is handled here
            if not is_out_of_memory(exc):
                raise
            knob, size = _oom_knob(ctx, name, exc)
        # outside the `except`, so the traceback (and the tensors its frames hold) is gone
        ctx.accelerator.free_memory()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = size // 2
        where = "GPU" if ctx.accelerator.device.type == "cuda" else str(ctx.accelerator.device).upper()
        if half >= 1 and ctx.cfg.train.auto_batch and not retried:
            ctx.log(f"stage {name}: out of {where} memory with {knob} = {size}; train.auto_batch halves it to "
                    f"{half} and retries the stage from its last checkpoint")
            _set_knob(ctx, knob, half)
            retried = True
            continue
        if half < 1:
            suggestion = "a smaller model (backbone.hidden_size, backbone.max_len) or a bigger GPU"
        else:
            suggestion = f"{knob} = {half}"
            if knob.startswith("stages."):
                accum = getattr(ctx.cfg.stages, name).grad_accum * 2
                suggestion += f" with stages.{name}.grad_accum = {accum} (the same effective batch)"
        if not ctx.cfg.train.auto_batch:
            suggestion += ", or train.auto_batch = true to halve and retry once by itself"
        tried = " (already halved once by train.auto_batch)" if retried else ""
        raise RunFailure(f"stage '{name}': out of {where} memory with {knob} = {size}{tried}. Try {suggestion}: "
                         f"`--set` it on a new run, or edit {ctx.run.config_path} and `padtui resume "
                         f"{ctx.run.path}` to continue from the checkpoints kept so far.", log=str(ctx.run.log_path))


DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
# torch's zip writer reports a short write as "unexpected pos N vs M" (or "file write failed")
DISK_WORDS = ("No space left", "StorageFull", "Disk quota", "Read-only file system", "file write failed",
              "unexpected pos")


def disk_failure(run: RunFolder, exc: BaseException) -> RunFailure | None:
    """A full disk or an unwritable folder, whichever library hit it (OSError; torch and safetensors wrap the
    OS error in their own exceptions), as a message that says what to do."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        what = f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    elif any(word in str(exc) for word in DISK_WORDS):
        what = str(exc).strip().splitlines()[0][:200]
    else:
        return None
    try:
        free = f"; {shutil.disk_usage(run.path).free / 2**20:.0f} MiB free there"
    except OSError:
        free = ""
    return RunFailure(f"cannot write to the run folder {run.path}: {what}{free}. Nothing was half-written: the "
                      f"files there are from the last complete checkpoint. Free some space (or fix the "
                      f"permissions), then `padtui resume {run.path}`.", log=str(run.log_path))


def _record_end(run: RunWriter, t0: float, message: str, status: str) -> None:
    """`error` + `run_end` events; on a full disk they may not fit, and the exception still tells the user."""
    try:
        run.emit("error", "", message=message, log=str(run.log_path), interrupted=status == "stopped")
        run.emit("run_end", "", status=status, seconds=time.perf_counter() - t0)
        run.log(f"{status}: {message}" + (f"; resume with `padtui resume {run.path}`" if status == "stopped" else ""))
    except OSError:
        pass


def check_same_data(run: RunFolder, data: SeqData) -> None:
    """On resume: the data must be what the run started with (manifest.json's dataset fingerprint and item map),
    or the checkpoints would go on training — or fail to load — on something else."""
    manifest = run.manifest()
    if not manifest:
        return
    was, now = manifest.get("dataset", {}), {"fingerprint": data.fingerprint, "stats": data.stats()}
    changes = []
    if was.get("fingerprint") != now["fingerprint"]:
        changes.append(f"dataset fingerprint {was.get('fingerprint')} → {now['fingerprint']}")
    if manifest.get("item_map_hash") not in (None, data.item_map_hash):
        changes.append(f"item map {manifest['item_map_hash'][:12]} → {data.item_map_hash[:12]}")
    for key in ("users", "items", "interactions"):
        before, after = was.get("stats", {}).get(key), now["stats"].get(key)
        if before is not None and before != after:
            changes.append(f"{key} {before:,} → {after:,}")
    if changes:
        raise ResumeRefused(
            f"{run.path}: the data changed since this run started ({'; '.join(changes)}). Resuming would continue "
            f"on other data; the run is left as it was. Restore the data, start a new run, or resume anyway with "
            f"`padtui resume {run.path} --allow-changed-data` (manifest.json keeps the original record).")


def execute(run: RunFolder, resume: bool = False, allow_changed_data: bool = False) -> dict:
    """Run (or continue) every stage of the run that has no result yet. Returns results.json's content."""
    run = RunWriter(run.path)  # this process owns the folder from here on: it appends events and takes the lock
    cfg = load_saved_config(run.config_path)
    stages = run_stages(run)
    check_writable(run.path, "run folder", "Free some space or fix its permissions, then try again.")
    acc = make_accelerator(cfg, run.path / "trackers")
    if acc.is_main_process:
        run.acquire()
    stop = StopSignal(run)
    stop.install()
    t0 = time.perf_counter()
    try:
        if cfg.train.log_with:
            acc.init_trackers(run.name, config=trackers.flat_config(cfg.to_dict()))
        data = load_data(cfg.dataset, cfg.stages.disentangle.n_bins, log=run.log)
        if resume and not allow_changed_data:
            check_same_data(run, data)
        ctx = RunContext(run, cfg, acc, data, stop)
        results = run.results() if resume else {}
        done = [s for s in stages if s in results.get("stages", {})]
        if resume:
            ctx.emit("resumed", "", done=done)
        else:
            ctx.emit("run_start", "", run=run.name, preset=cfg.preset, seed=cfg.seed, stages=stages,
                     device=str(acc.device), num_processes=acc.num_processes)
        if ctx.main and not run.manifest_path.is_file():  # the record of how the run began is never rewritten
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
        reuse = run.path / "reuse.json"
        if not results["stages"] and reuse.is_file():
            adopt_stages(ctx, RunFolder(Path(json.loads(reuse.read_text())["from"])), results)
        for i, name in enumerate(stages):  # a finished stage whose weights were deleted trains again, and after it
            if name in results["stages"] and not (run.checkpoints / name / "best.safetensors").is_file():
                ctx.log(f"stage {name}: its checkpoint is gone; it and the stages after it train again")
                for later in stages[i:]:  # their checkpoints were trained on the old weights: stale now
                    results["stages"].pop(later, None)
                    if ctx.main:
                        shutil.rmtree(run.checkpoints / later, ignore_errors=True)
        for name in stages:
            if name in results["stages"]:
                continue
            stop.check(f"before stage '{name}'")
            ctx.log(f"stage {name}: start")
            results["stages"][name] = run_stage(ctx, name)
            if ctx.main:
                atomic_write_json(run.results_path, results)
        if "text_knn" not in results and {"align", "disentangle"} & set(results["stages"]):
            results["text_knn"] = ctx.text_knn()
            if ctx.main:
                atomic_write_json(run.results_path, results)
        ctx.emit("run_end", "", status="done", seconds=time.perf_counter() - t0)
        ctx.log(f"run finished in {time.perf_counter() - t0:.0f}s")
        return results
    except Interrupted as exc:
        if acc.is_main_process:
            _record_end(run, t0, str(exc), "stopped")
        raise
    except ResumeRefused:
        raise  # nothing happened to the run: it stays resumable
    except (RunFailure, InputError) as exc:
        if acc.is_main_process:
            _record_end(run, t0, str(exc), "failed")
        raise
    except Exception as exc:
        failure = disk_failure(run, exc)
        if acc.is_main_process:
            if failure is None:
                try:
                    run.log("crashed:\n" + traceback.format_exc())
                except OSError:
                    pass
            _record_end(run, t0, str(failure) if failure else f"{type(exc).__name__}: {exc}", "failed")
        if failure is not None:
            raise failure from None
        raise
    finally:
        stop.restore()
        if cfg.train.log_with:
            acc.end_training()  # flushes and closes the trackers' files
        if acc.is_main_process:
            run.release()


def detach_worker(path: Path, resume: bool = False, num_processes: int = 1, allow_changed_data: bool = False) -> int:
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
    if allow_changed_data:
        cmd.append("--allow-changed-data")
    with open(path / "worker.out", "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=os.getcwd(), env=os.environ.copy())
    if (path / "config.toml").is_file():
        atomic_write_text(path / "worker.pid", f"{proc.pid}\n")
    return proc.pid
