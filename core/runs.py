"""A run is a folder: config.toml, manifest.json, events.jsonl, log.txt, worker.pid, checkpoints/, results.json.

This module is the reading side: `RunFolder` (paths, events tailed by byte offset with a trailing partial line
ignored, status, results) and the runs folder (`iter_runs`). The one process that owns a run writes through
`core.run_writer.RunWriter` (append-only events, the log, the worker lock); JSON and TOML files are replaced
atomically (`core.atomic`). Pure Python: the TUI imports this.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from core.errors import InputError

EVENT_KINDS = (
    "run_start", "stage_start", "step", "epoch", "eval", "checkpoint", "stage_end", "run_end", "error", "resumed",
)


def default_runs_dir() -> Path:
    return Path(os.environ.get("PADTUI_RUNS_DIR", "runs"))


def cache_dir() -> Path:
    base = os.environ.get("PADTUI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "padtui"
    )
    return Path(base)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0): treat it as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _event(raw: bytes) -> dict | None:
    """One events.jsonl line as an event, or None when it is not one a reader can use (not UTF-8, not JSON,
    not an object, no known `kind`, no numeric `time`)."""
    try:
        event = json.loads(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
        return None
    if not isinstance(event, dict) or event.get("kind") not in EVENT_KINDS:
        return None
    if not isinstance(event.get("time"), (int, float)) or isinstance(event.get("time"), bool):
        return None
    if not isinstance(event.get("stage", ""), str):
        return None
    event.setdefault("stage", "")
    return event


def _read_json(path: Path) -> dict:
    """A JSON object file, or {} when it is missing, unreadable or not an object (a reader never fails on it)."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def seed_folders(group: Path) -> list[Path]:
    """A group's seed-N folders in seed order (seed-6 before seed-10); a folder named otherwise sorts last."""
    def key(p: Path) -> tuple[int, str]:
        tail = p.name.split("-", 1)[1]
        return (int(tail), "") if tail.isdigit() else (1 << 62, p.name)

    return sorted((p for p in Path(group).glob("seed-*") if p.is_dir()), key=key)


@dataclass
class RunFolder:
    path: Path
    bad_lines: int = field(default=0, init=False, compare=False)  # events.jsonl lines skipped by the readers

    def __post_init__(self):
        self.path = Path(self.path)

    # files
    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def pid_path(self) -> Path:
        return self.path / "worker.pid"

    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def name(self) -> str:
        return self.path.name

    def is_run(self) -> bool:
        return self.config_path.is_file()

    @classmethod
    def open(cls, path: str | Path) -> "RunFolder":
        run = cls(Path(path))
        if not run.path.is_dir():
            raise InputError(f"{path}: no such run folder. `padtui runs` lists the runs.")
        if not run.is_run():
            if (run.path / "group.json").is_file():
                raise InputError(f"{path}: is a group of seeded runs; pass one of its seed-* folders.")
            raise InputError(f"{path}: not a run folder (no config.toml). `padtui runs` lists the runs.")
        return run

    # events
    def read_events(self, offset: int = 0) -> tuple[list[dict], int]:
        """Events from byte `offset`; returns them and the offset after the last complete line."""
        try:
            with open(self.events_path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            return [], offset
        end = chunk.rfind(b"\n")
        if end < 0:
            return [], offset
        events = []
        for raw in chunk[: end + 1].splitlines():
            if raw.strip():
                event = _event(raw)
                if event is None:  # torn by a crash mid-write, or edited by hand: skip, never fail the reader
                    self.bad_lines += 1
                    continue
                events.append(event)
        return events, offset + end + 1

    def events(self) -> list[dict]:
        return self.read_events(0)[0]

    def log_tail(self, lines: int = 20) -> list[str]:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 16384))
                return fh.read().decode("utf-8", "replace").splitlines()[-lines:]
        except FileNotFoundError:
            return []

    # worker lock
    def worker_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return None

    def stop(self, sig: int = signal.SIGTERM) -> bool:
        pid = self.worker_pid()
        if pid and pid_alive(pid):
            os.kill(pid, sig)
            return True
        return False

    # state
    def results(self) -> dict:
        return _read_json(self.results_path)

    def manifest(self) -> dict:
        return _read_json(self.manifest_path)

    def status(self, events: list[dict] | None = None) -> str:
        """running | done | failed | interrupted | stopped | created."""
        events = self.events() if events is None else events
        pid = self.worker_pid()
        if pid and pid_alive(pid):
            return "running"
        for event in reversed(events):
            if event["kind"] == "run_end":
                return event.get("status", "done")
            if event["kind"] == "error":
                return "stopped" if event.get("interrupted") else "failed"
        return "interrupted" if events else "created"

    def summary(self) -> dict:
        """What a run list shows: status, preset, started, duration, headline metrics."""
        events = self.events()
        start = next((e for e in events if e["kind"] == "run_start"), {})
        first = events[0]["time"] if events else None
        last = events[-1]["time"] if events else None
        return {
            "name": self.name,
            "path": str(self.path),
            "status": self.status(events),
            "preset": start.get("preset", ""),
            "seed": start.get("seed"),
            "started": first,
            "seconds": (last - first) if first and last else 0.0,
            "headline": headline(self.results()),
        }


def headline(results: dict) -> dict:
    """The numbers a run list shows: the last finished stage's test NDCG@10, overall and cold."""
    for stage in ("disentangle", "align", "pretrain"):
        test = results.get("stages", {}).get(stage, {}).get("test")
        if test:
            return {
                "stage": stage,
                "NDCG@10": test.get("overall", {}).get("NDCG@10"),
                "cold NDCG@10": test.get("cold", {}).get("NDCG@10"),
            }
    return {}


def peak_resources(events: Iterable[dict]) -> dict[str, dict[str, float]]:
    """Per stage ("embed" for the LLM embedding), the largest RSS and GPU memory (MB) its logged steps saw."""
    peaks: dict[str, dict[str, float]] = {}
    for event in events:
        for key in ("rss_mb", "gpu_mem_mb"):
            if event.get("kind") == "step" and isinstance(event.get(key), (int, float)):
                slot = peaks.setdefault(event.get("stage", ""), {})
                slot[key] = max(slot.get(key, 0.0), event[key])
    return peaks


def refit_step(fit: dict) -> float:
    """How far a held-out re-fit moved toward its re-fit (results of older versions lack the step)."""
    return fit.get("step", 1.0 if fit.get("kept", True) else 0.0)


def fit_value(fit: dict, suffix: str) -> tuple[str, object] | tuple[None, None]:
    """(metric name, value) of the first key of a re-fit record that ends with `suffix`: the record names its
    numbers after the run's selection metric ("NDCG@10 stage 1 (floor)"), so readers match the rest."""
    return next(((k.removesuffix(suffix), v) for k, v in fit.items() if k.endswith(suffix)), (None, None))


def refit_line(what: str, fit: dict) -> str:
    """One line on a held-out re-fit as results.json keeps it (stage 3's `gate_fit`, `calibrated_sr.fit`): its
    2-fold check (the selection metric as trained, the whole re-fit and the step taken, out of fold), how far it
    moved, its loss."""
    metric, trained = fit_value(fit, " as trained")
    oof = fit_value(fit, " re-fit, out of fold")[1]
    at_step = fit_value(fit, " at the step, out of fold")[1]
    users, step = fit.get("users", "?"), refit_step(fit)
    if trained is None or oof is None:
        check = f"{users} fit users (not checked)"
    else:
        check = f"{metric} {trained:.4f} as trained vs {oof:.4f} re-fitted"
        if 0 < step < 1 and at_step is not None:
            check += f", {at_step:.4f} at step {step:g}"
        tolerance = fit.get("tolerance")
        allowed = f", {tolerance:.0%} allowed" if tolerance else ""
        floor = fit_value(fit, " stage 1 (floor)")[1]
        if floor is not None:
            allowed += f", a step must beat stage 1's {floor:.4f} with 95 % confidence"
        cold = fit_value(fit, " cold, stage 1")[1]
        if cold is not None:
            allowed += f" and keep its cold {cold:.4f} on {fit.get('cold fit users', '?')} cold fit users"
        check += f", out of fold (2-fold, {users} fit users{allowed})"
    if fit.get("fallback"):
        return f"{what}: no step passed, so stage 3 gave way to stage 1 (its ID expert, the whole gate): {check}"
    if not fit.get("kept"):
        return f"{what}: not re-fitted on the fit split: {check}"
    moved = "re-fitted on the fit split" if step >= 1 else f"moved {step:.0%} of the way to its re-fit on the fit split"
    loss = f"; loss {fit['loss'][0]:.4f} → {fit['loss'][1]:.4f}" if fit.get("loss") else ""
    return f"{what}: {moved}: {check}{loss}"


def iter_runs(runs_dir: Path) -> Iterator[RunFolder]:
    """Every run folder below runs_dir (seed groups are one level deeper), newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return
    found = []
    for child in runs_dir.iterdir():
        if (child / "config.toml").is_file():
            found.append(RunFolder(child))
        elif (child / "group.json").is_file():
            found.extend(RunFolder(c) for c in child.iterdir() if (c / "config.toml").is_file())
    found.sort(key=lambda r: r.path.stat().st_mtime, reverse=True)
    yield from found


def new_run_path(runs_dir: Path, preset: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(runs_dir) / f"{preset or 'run'}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def check_writable(folder: Path, what: str = "runs folder",
                   fix: str = "Pass --runs-dir to a writable folder.") -> None:
    """Create `folder` if needed and write a probe file into it; an InputError names the folder otherwise."""
    probe = Path(folder) / f".probe-{os.getpid()}"
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        probe.write_text("x")
        probe.unlink()
    except OSError as exc:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
        raise InputError(f"{folder}: {what} is not writable ({exc.strerror or exc}). {fix}") from None
