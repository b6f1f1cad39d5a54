"""The TUI's only way to start work: the padtui CLI in a subprocess, called from thread workers.

`padtui run … --detach` starts the worker in its own session and returns at once, so quitting the TUI,
closing the terminal or losing SSH (SIGHUP) leaves the run going. The CLI call itself also gets its own
session (belt and braces), and we read only its first stdout line: a detached child that kept the pipe
open must not keep us waiting.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from core.config import user_presets_dir  # noqa: F401  (the screens save presets there)

LAUNCH_TIMEOUT = 120.0


class CommandError(Exception):
    """The CLI refused or failed; the message is its own one-paragraph explanation."""


def padtui_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "padtui", *args]


def _start_detached(args: list[str]) -> str:
    """Run a `--detach` CLI call; return its `run: <folder>` path."""
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(
            padtui_command(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        folder = ""
        for line in proc.stdout:
            if line.startswith("run: "):
                folder = line[5:].strip()
                break
        # keep reading (never close the pipe under the CLI, it still prints), but in a thread: a detached
        # child that inherited the pipe must not keep us waiting for EOF
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        try:
            code = proc.wait(timeout=LAUNCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None  # still going: the run folder is what matters
        err.seek(0)
        message = err.read().strip()
    if code not in (0, None) or not folder:
        raise CommandError(message or f"`padtui {' '.join(args)}` exited with {code} without naming a run folder.")
    return folder


def launch(preset_toml: Path, runs_dir: Path) -> Path:
    folder = _start_detached(["run", str(preset_toml), "--detach", "--runs-dir", str(runs_dir)])
    path = Path(folder)
    return path if path.is_absolute() else Path.cwd() / path


def resume(run_path: Path) -> None:
    _start_detached(["resume", str(run_path), "--detach"])


def dataset_stats(dataset: str | dict, timeout: float = 900.0) -> dict:
    """`padtui data stats` for a dataset preset name or inline table (it takes a run preset: we write one)."""
    from core.config import to_toml

    with tempfile.TemporaryDirectory(prefix="padtui-stats-") as folder:
        toml = Path(folder) / "stats.toml"
        toml.write_text(to_toml({"dataset": dataset}), encoding="utf-8")
        proc = subprocess.run(
            padtui_command("data", "stats", str(toml), "--json"), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout,
        )
    if proc.returncode != 0:
        raise CommandError(proc.stderr.strip() or f"`padtui data stats` exited with {proc.returncode}.")
    try:
        return json.loads(proc.stdout[proc.stdout.find("{"):])
    except json.JSONDecodeError:
        raise CommandError(f"`padtui data stats` printed no JSON: {proc.stdout[:200]!r}") from None

