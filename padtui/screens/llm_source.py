"""Form for an LLM that is not a preset: a Hugging Face hub id or a local folder."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.widgets import Input, Select, Static

from padtui.screens.dataset_source import _SourceForm
from padtui.availability import availability

POOLINGS = ("mean", "last", "cls", "prompt_last")


class CustomLLMScreen(_SourceForm):
    TITLE_TEXT = "LLM: Hugging Face hub id or local folder"

    def compose_fields(self) -> ComposeResult:
        yield from self.field("model", Input(placeholder="Qwen/Qwen2.5-0.5B or /models/my-llm", id="llm-model",
                                             compact=True))
        yield Static("", id="llm-availability", classes="form-hint")
        yield from self.field("revision", Input(placeholder="main", id="llm-revision", compact=True))
        yield from self.field("gguf file", Input(placeholder="(only for GGUF checkpoints)", id="llm-gguf",
                                                 compact=True))
        yield from self.field("pooling", Select([(p, p) for p in POOLINGS], value="mean", allow_blank=False,
                                                id="llm-pooling", compact=True))
        yield from self.field("max length", Input("64", type="integer", id="llm-max-length", compact=True))

    def on_mount(self) -> None:
        self.query_one("#llm-model").focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "llm-model":
            text = event.value.strip()
            self.query_one("#llm-availability", Static).update(availability(text, set())[1] if text else "")

    def result(self) -> dict:
        model = self.value("llm-model")
        if not model:
            raise ValueError("model is required: a hub id (owner/name) or a local folder.")
        if model.startswith(("/", "~", ".")) and not Path(model).expanduser().is_dir():
            raise ValueError(f"local folder {model!r} not found.")
        out: dict = {"model": model, "pooling": self.value("llm-pooling") or "mean",
                     "max_length": int(self.value("llm-max-length") or 64)}
        if self.value("llm-revision"):
            out["revision"] = self.value("llm-revision")
        if self.value("llm-gguf"):
            out["gguf_file"] = self.value("llm-gguf")
        return out
