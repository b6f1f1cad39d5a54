"""LLM picker: presets with their size and whether they are available offline / cached; or a hub id / folder."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from padtui.availability import availability, fetched_assets
from padtui.widgets.picker import Picker


class LLMPicker(Picker):
    TITLE = "LLM"
    KIND = "llms"
    ACTIONS = (("custom", "+ Hub id / local folder…"),)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fetched = fetched_assets()

    def preset_options(self) -> list[tuple[str, Text]]:
        out = []
        for name, data in self.presets.items():
            tag, _ = availability(data.get("model", ""), self.fetched)
            prompt = Text(no_wrap=True, overflow="ellipsis")
            prompt.append(f"{name:<13}")
            prompt.append(f"{data.get('params', '?'):>5} {tag}", style="dim")
            out.append((name, prompt))
        return out

    def custom_label(self, value: dict) -> str:
        return f"model: {value.get('model', '')}"

    def describe(self, value: Any) -> Text:
        data = self.presets.get(value, value if isinstance(value, dict) else {})
        model = data.get("model", "")
        _, sentence = availability(model, self.fetched)
        text = Text(data.get("description", model))
        text.append(f"\n{model} · pooling {data.get('pooling', 'mean')}", style="dim")
        text.append(f"\n{sentence}")
        return text

    def run_action(self, action: str) -> None:
        from padtui.screens.llm_source import CustomLLMScreen

        self.app.push_screen(CustomLLMScreen(), lambda value: value and self.select_value(value))
