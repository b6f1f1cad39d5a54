"""LLM picker: presets with their size and whether they are available offline / cached; or a hub id / folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.text import Text

from padtui.widgets.picker import Picker


def fetched_assets() -> set[str]:
    """Names of offline assets already fetched (core.assets may not exist yet: then none)."""
    try:
        from core.assets import list_assets

        return {a["name"] for a in list_assets() if a.get("fetched")}
    except Exception:
        return set()


def hf_cached(model_id: str) -> bool:
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface"), "hub"
    )
    return (Path(hub) / f"models--{model_id.replace('/', '--')}").is_dir()


def availability(model: str, fetched: set[str]) -> tuple[str, str]:
    """(short tag, sentence) for a model reference."""
    if model.startswith("asset:"):
        name = model.split(":", 1)[1]
        if name in fetched:
            return "offline ✓", "offline asset, cached"
        return "offline ✗", f"offline asset, not fetched yet: F5 fetches it before the launch (or `padtui assets fetch {name}`)"
    if model.startswith(("/", "~", ".")) or Path(model).expanduser().is_dir():
        ok = Path(model).expanduser().is_dir()
        return ("local ✓" if ok else "local ✗"), ("local folder" if ok else "local folder not found")
    if hf_cached(model):
        return "hub ✓", "Hugging Face hub, cached"
    return "hub", "Hugging Face hub: downloaded on first use"


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
