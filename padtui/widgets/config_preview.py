"""The resolved config as TOML (what config.toml in the run folder will say), or the first problem."""

from __future__ import annotations

from rich.syntax import Syntax
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


class ConfigPreview(VerticalScroll):
    text = ""  # what is shown: the TOML, or the error

    def compose(self):
        yield Static("", id="preview-text")

    def show(self, toml_text: str) -> None:
        self.text = toml_text
        self.query_one("#preview-text", Static).update(
            Syntax(toml_text, "toml", theme="ansi_dark", background_color="default", word_wrap=False)
        )

    def show_error(self, message: str) -> None:
        self.text = f"✗ {message}"
        self.query_one("#preview-text", Static).update(Text(f"✗ {message}", style="bold red"))
