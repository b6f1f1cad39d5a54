"""A titled list of choices with a detail box: the base of the dataset, backbone and LLM pickers.

The highlighted choice is the value (arrows choose, no mouse needed). Entries starting with "+" are
actions (enter opens a form) that add a custom choice: an inline table instead of a preset name.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from core.config import list_presets, read_toml
from core.errors import InputError


class Picker(Vertical):
    TITLE = ""
    KIND = ""  # preset folder: "datasets" | "backbones" | "llms"
    ACTIONS: tuple[tuple[str, str], ...] = ()  # (action id, prompt)

    class Changed(Message):
        def __init__(self, picker: "Picker") -> None:
            super().__init__()
            self.picker = picker

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.choices: dict[str, Any] = {}  # option id -> preset name (str) or inline table (dict)
        self.customs: list[tuple[str, Any, str]] = []  # (option id, value, label)
        self.value: Any = None
        self.border_title = self.TITLE
        self.presets: dict[str, dict] = {}  # preset name -> its TOML; unreadable files are left out
        for name, path in list_presets(self.KIND).items():
            try:
                self.presets[name] = read_toml(path)
            except InputError:
                continue

    def compose(self) -> ComposeResult:
        yield OptionList(classes="picker-list")
        yield Static("", classes="picker-detail")

    def on_mount(self) -> None:
        self.rebuild()

    # subclasses
    def preset_options(self) -> list[tuple[str, Text]]:
        """(preset name, prompt) for every preset."""
        return []

    def describe(self, value: Any) -> Text:
        return Text(str(value))

    def custom_label(self, value: dict) -> str:
        return str(value)

    def run_action(self, action: str) -> None:
        pass

    # mechanics
    def rebuild(self, keep: Any = None) -> None:
        keep = self.value if keep is None else keep
        options, self.choices = [], {}
        for name, prompt in self.preset_options():
            self.choices[f"preset:{name}"] = name
            options.append(Option(prompt, id=f"preset:{name}"))
        for option_id, value, label in self.customs:
            self.choices[option_id] = value
            options.append(Option(Text(label, no_wrap=True, overflow="ellipsis"), id=option_id))
        for action_id, prompt in self.ACTIONS:
            options.append(Option(Text(prompt, style="italic"), id=f"action:{action_id}"))
        listing = self.query_one(OptionList)
        listing.set_options(options)
        if keep is not None:
            self.select_value(keep)

    def select_value(self, value: Any) -> None:
        """Highlight a preset name, or add (or reuse) a custom entry for an inline table."""
        if isinstance(value, dict) and "preset" in value and len(value) == 1:
            value = value["preset"]
        option_id = next((oid for oid, v in self.choices.items() if v == value), None)
        if option_id is None and isinstance(value, dict):
            option_id = f"custom:{len(self.customs)}"
            self.customs.append((option_id, value, self.custom_label(value)))
            self.rebuild(keep=value)
            return
        if option_id is None:
            return
        listing = self.query_one(OptionList)
        listing.highlighted = listing.get_option_index(option_id)
        self._choose(option_id)

    def _choose(self, option_id: str) -> None:
        self.value = self.choices[option_id]
        self.show_detail()
        self.post_message(self.Changed(self))

    def show_detail(self) -> None:
        self.query_one(".picker-detail", Static).update(self.describe(self.value))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        option_id = event.option.id or ""
        if option_id in self.choices:
            if self.choices[option_id] != self.value:
                self._choose(option_id)
        else:
            self.query_one(".picker-detail", Static).update(Text("enter: open the form", style="italic"))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option_id = event.option.id or ""
        if option_id.startswith("action:"):
            self.run_action(option_id.split(":", 1)[1])
