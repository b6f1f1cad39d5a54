"""Ask for a name and a description under which to save the setup's choices as a run preset."""

from __future__ import annotations

import re
from pathlib import Path

from textual.app import ComposeResult
from textual.widgets import Input, Static

from padtui.screens.dataset_source import _SourceForm

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SavePresetScreen(_SourceForm):
    TITLE_TEXT = "Save as run preset"

    def __init__(self, folder: Path, name: str = "", description: str = "") -> None:
        super().__init__()
        self.folder = folder
        self.initial = (name, description)

    def compose_fields(self) -> ComposeResult:
        yield from self.field("name", Input(self.initial[0], placeholder="my-run", id="preset-name", compact=True))
        yield from self.field("description", Input(self.initial[1], id="preset-description", compact=True))
        yield Static(f"saved to {self.folder}/NAME.toml", id="preset-where", classes="form-hint")

    def on_mount(self) -> None:
        self.query_one("#preset-name").focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "preset-name":
            name = event.value.strip()
            where = self.folder / f"{name or 'NAME'}.toml"
            note = " (exists: will be replaced)" if name and where.exists() else ""
            self.query_one("#preset-where", Static).update(f"saved to {where}{note}")

    def result(self) -> dict:
        name = self.value("preset-name")
        if not NAME.match(name):
            raise ValueError("name: letters, digits, '.', '_' or '-', starting with a letter or digit.")
        return {"name": name, "description": self.value("preset-description")}
