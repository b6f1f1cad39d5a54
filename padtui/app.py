"""padtui's Textual app: composition, global keys and the command palette. The screens do the work."""

from __future__ import annotations

import os

from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from core.runs import RunFolder, pid_alive
from padtui.screens.help import HelpScreen
from padtui.screens.history import HistoryScreen
from padtui.screens.monitor import MonitorScreen
from padtui.screens.setup import SetupScreen, running_runs


class PadApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "padtui"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit"),
        Binding("f1", "help", "Help", id="app.help"),
    ]

    def __init__(self, runs_dir: Path, attach: Path | None = None, preset: str | None = None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir).resolve()
        self.attach = attach
        self.preset = preset

    def get_default_screen(self) -> Screen:
        return SetupScreen(self.runs_dir, self.preset)

    def on_mount(self) -> None:
        if self.attach is not None:
            self.open_run(Path(self.attach))

    def open_run(self, path: Path) -> None:
        """The monitor for a run folder; a seed group opens its running (else its last) seed."""
        path = Path(path)
        if (path / "group.json").is_file():
            seeds = sorted(p for p in path.iterdir() if (p / "config.toml").is_file())
            alive = [p for p in seeds if (pid := RunFolder(p).worker_pid()) and pid_alive(pid)]
            path = (alive or seeds or [path])[0 if alive else -1]
        if not (path / "config.toml").is_file():
            self.notify(f"{path}: not a run folder (no config.toml).", severity="error")
            return
        self.push_screen(MonitorScreen(path))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_history(self) -> None:
        if not isinstance(self.screen, HistoryScreen):
            self.push_screen(HistoryScreen(self.runs_dir))

    def action_setup(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        yield SystemCommand("New run", "Setup: pick dataset, backbone, LLM and launch", self.action_setup)
        yield SystemCommand("History", "All runs in the runs folder (F2)", self.action_history)
        yield SystemCommand("Help", "Every key of every screen (F1)", self.action_help)
        for title, help_text, callback in getattr(screen, "palette_commands", lambda: ())():
            yield SystemCommand(title, help_text, callback)


def discard_typeahead() -> None:
    """Drop pending terminal input (keys typed during start-up, stray escape sequences after quitting), which
    would otherwise be echoed raw into the shell ("xyz?^[OQ")."""
    try:
        import termios

        if os.isatty(0):  # the terminal itself (fd 0), whatever sys.stdin was replaced with
            termios.tcflush(0, termios.TCIFLUSH)
    except (ImportError, OSError, ValueError):  # no termios (Windows), a closed or odd stdin: nothing to drop
        pass


def run_app(runs_dir: Path, attach: Path | None = None, preset: str | None = None) -> int:
    """The `padtui` and `padtui attach RUN` entry point; returns the exit code."""
    app = PadApp(runs_dir, attach, preset)
    discard_typeahead()  # keys typed while Python and Textual start must not reach the app or the shell
    try:
        app.run()
    finally:
        discard_typeahead()
    for path in running_runs(Path(runs_dir)):
        print(f"still running: {path.name}  (re-attach: padtui attach {path})")
    return app.return_code or 0
