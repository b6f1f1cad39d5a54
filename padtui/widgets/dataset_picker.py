"""Dataset picker: presets (description, stats once computed), a Hugging Face dataset, or a local file."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual import work
from textual.binding import Binding

from core.runs import cache_dir
from padtui.widgets.picker import Picker


def stats_line(stats: dict) -> str:
    parts = []
    for key in ("users", "items", "interactions"):
        if isinstance(stats.get(key), (int, float)):
            parts.append(f"{stats[key]:,} {key}")
    sparsity = stats.get("sparsity")
    if isinstance(sparsity, (int, float)):
        parts.append(f"sparsity {sparsity:.2%}" if sparsity <= 1 else f"sparsity {sparsity:.2f}%")
    return " · ".join(parts) or "stats: (empty)"


class DatasetPicker(Picker):
    TITLE = "Dataset"
    KIND = "datasets"
    ACTIONS = (("hub", "+ Hugging Face dataset…"), ("local", "+ Local file…"))
    BINDINGS = [Binding("s", "stats", "Stats", id="setup.stats")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stats: dict[str, dict | str] = {}  # preset -> stats, or "computing…" / an error line

    def preset_options(self) -> list[tuple[str, Text]]:
        from padtui.availability import fetched_assets

        fetched = fetched_assets()
        out = []
        for name, data in self.presets.items():
            prompt = Text(no_wrap=True, overflow="ellipsis")
            prompt.append(name)
            if data.get("source") == "asset":  # an offline asset: fetched or not, as the LLM list says
                prompt.append(" ✓" if data.get("path") in fetched else " ✗ (fetched at launch)",
                              style="green" if data.get("path") in fetched else "yellow")
            prompt.append(f"  {data.get('description', '')}", style="dim")
            out.append((name, prompt))
        return out

    def custom_label(self, value: dict) -> str:
        return f"{value.get('source', '?')}: {value.get('path', '')}"

    @staticmethod
    def stats_key(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    def cached_stats(self, name: str) -> dict | str | None:
        if name in self.stats:
            return self.stats[name]
        if name.startswith("{"):
            return None
        path = cache_dir() / "stats" / f"{name}.json"
        try:
            self.stats[name] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return self.stats[name]

    def describe(self, value: Any) -> Text:
        if isinstance(value, dict):
            text = Text(f"{value.get('source')}: {value.get('path')}")
            extra = [f"{k} {value[k]}" for k in ("name", "split", "revision") if value.get(k)]
            cols = value.get("columns") or {}
            if extra:
                text.append("\n" + " · ".join(extra), style="dim")
            if cols:
                text.append("\n" + " · ".join(f"{k}={v}" for k, v in cols.items() if v), style="dim")
            stats = self.cached_stats(self.stats_key(value))
            if isinstance(stats, dict):
                text.append("\n" + stats_line(stats))
            else:
                text.append("\n" + (stats or "stats: not computed (press s)"), style="dim")
            return text
        data = self.presets.get(value, {})
        stats = self.cached_stats(value)
        if isinstance(stats, dict):
            text = Text(stats_line(stats))
        elif isinstance(stats, str):
            text = Text(stats, style="italic")
        else:
            text = Text("stats: not computed (press s)", style="dim")
        source = data.get("source", "synthetic")
        text.append(f"\n{source}" + (f": {data['path']}" if data.get("path") else ""), style="dim")
        text.append("\n" + data.get("description", str(value)))
        return text

    def action_stats(self) -> None:
        if self.value is None:
            return
        key = self.stats_key(self.value)
        if self.stats.get(key) == "stats: computing…":
            return
        self.stats[key] = "stats: computing…"
        self.show_detail()
        self._compute_stats(key, self.value)

    @work(thread=True, group="stats")
    def _compute_stats(self, name: str, dataset: Any) -> None:
        from padtui.screens import commands

        try:
            result: dict | str = commands.dataset_stats(dataset)
        except Exception as exc:  # CommandError, timeout, no CLI yet
            result = f"stats failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        self.app.call_from_thread(self._stats_done, name, result)

    def _stats_done(self, name: str, result: dict | str) -> None:
        self.stats[name] = result
        if self.value is not None and self.stats_key(self.value) == name:
            self.show_detail()

    def run_action(self, action: str) -> None:
        from padtui.screens.dataset_source import HubDatasetScreen, LocalFileScreen

        screen = HubDatasetScreen() if action == "hub" else LocalFileScreen()
        self.app.push_screen(screen, lambda value: value and self.select_value(value))
