"""Backbone picker: SASRec / GRU4Rec / BERT4Rec with their key hyperparameters."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from padtui.widgets.picker import Picker


def hyperparameters(data: dict) -> str:
    parts = [f"d{data.get('hidden_size', 64)}", f"L{data.get('n_layers', 2)}"]
    if data.get("kind", "sasrec") != "gru4rec":
        parts.append(f"h{data.get('n_heads', 2)}")
    parts.append(f"len{data.get('max_len', 50)}")
    return " ".join(parts)


class BackbonePicker(Picker):
    TITLE = "Backbone"
    KIND = "backbones"

    def preset_options(self) -> list[tuple[str, Text]]:
        out = []
        for name, data in self.presets.items():
            prompt = Text(no_wrap=True, overflow="ellipsis")
            prompt.append(f"{name:<9}")
            prompt.append(hyperparameters(data), style="dim")
            out.append((name, prompt))
        return out

    def describe(self, value: Any) -> Text:
        data = self.presets.get(value, value if isinstance(value, dict) else {})
        text = Text(data.get("description", str(value)))
        text.append("\nhidden {hidden_size} · layers {n_layers} · dropout {dropout} · max_len {max_len}".format(
            **{"hidden_size": 64, "n_layers": 2, "dropout": 0.2, "max_len": 50, **data}), style="dim")
        if data.get("kind") == "bert4rec":
            text.append(f" · mask_prob {data.get('mask_prob', 0.2)}", style="dim")
        return text
