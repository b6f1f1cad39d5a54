"""The last lines of the run's log.txt (and the error message when the run failed), newest at the bottom."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class LogTail(Widget):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: list[str] = []
        self.error: dict = {}

    def show(self, lines: list[str], error: dict | None = None) -> None:
        self.lines, self.error = lines, error or {}
        self.refresh()

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        room = max(1, self.content_size.height)
        if self.error:
            text.append(f"✗ {self.error.get('message', 'error')}", style="bold red")
            if self.error.get("log"):
                text.append(f"  (log: {self.error['log']})")
            room -= 1
        lines = self.lines[-room:] if self.lines else ["(log is empty)"]
        if self.error:
            text.append("\n")
        text.append("\n".join(lines))
        return text
