"""The stage settings that matter: epochs, lr, batch size, loss per stage; λ (MMD weight), bins, seed.

Inputs check their own syntax as you type (numbers only, > 0); the setup screen then validates the whole
config with core.config.resolve and shows the first problem by name.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.validation import Integer, Number
from textual.widgets import Input, Label, Select

from core.config import STAGES, RunConfig
from core.errors import InputError

LOSSES = ("bce", "ce", "sampled_softmax")
COLUMNS = (("epochs", "epochs", int), ("lr", "lr", float), ("batch_size", "batch", int))
EXTRAS = (("stages.align.mmd_weight", "λ MMD", float, 0.0), ("stages.disentangle.n_bins", "bins", int, 2),
          ("seed", "seed", int, 0))


def _field_id(dotted: str) -> str:
    return "f-" + dotted.replace(".", "-")


def _get(cfg: RunConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def _input(value: Any, kind: type, minimum: float | None, dotted: str) -> Input:
    validator = Integer(minimum=int(minimum or 0)) if kind is int else Number(minimum=minimum)
    if kind is float and minimum is None:
        validator = Number()  # "> 0" is core.config's check, with its own message
    return Input(str(value), type="integer" if kind is int else "number", validators=[validator],
                 compact=True, id=_field_id(dotted), classes="form-input")


class StageForm(Vertical):
    class Changed(Message):
        pass

    def compose(self) -> ComposeResult:
        defaults = RunConfig()
        with Grid(id="stage-grid"):
            yield Label("stage", classes="form-head")
            for _, title, _ in COLUMNS:
                yield Label(title, classes="form-head")
            yield Label("loss", classes="form-head")
            for stage in STAGES:
                yield Label(stage, classes="form-label")
                for key, _, kind in COLUMNS:
                    dotted = f"stages.{stage}.{key}"
                    yield _input(_get(defaults, dotted), kind, None if kind is float else 1, dotted)
                yield Select([(loss, loss) for loss in LOSSES], value="ce", allow_blank=False, compact=True,
                             id=_field_id(f"stages.{stage}.loss"), classes="form-select")
        with Horizontal(id="stage-extras"):
            for dotted, title, kind, minimum in EXTRAS:
                yield Label(title, classes="form-label")
                yield _input(_get(defaults, dotted), kind, minimum, dotted)

    def fields(self) -> list[tuple[str, type]]:
        out = [(f"stages.{s}.{key}", kind) for s in STAGES for key, _, kind in COLUMNS]
        out += [(f"stages.{s}.loss", str) for s in STAGES]
        out += [(dotted, kind) for dotted, _, kind, _ in EXTRAS]
        return out

    def set_values(self, cfg: RunConfig) -> None:
        with self.prevent(Input.Changed, Select.Changed):
            for dotted, kind in self.fields():
                widget = self.query_one(f"#{_field_id(dotted)}")
                value = _get(cfg, dotted)
                if isinstance(widget, Select):
                    widget.value = value
                else:
                    widget.value = repr(value) if kind is float else str(value)
        self.post_message(self.Changed())

    def values(self) -> dict[str, Any]:
        """Dotted key -> value; InputError naming the first field that is not a number."""
        out: dict[str, Any] = {}
        for dotted, kind in self.fields():
            widget = self.query_one(f"#{_field_id(dotted)}")
            if isinstance(widget, Select):
                out[dotted] = widget.value
                continue
            text = widget.value.strip()
            try:
                out[dotted] = kind(text)
            except ValueError:
                what = "a whole number" if kind is int else "a number (e.g. 0.001 or 1e-3)"
                raise InputError(f"{dotted} = {text!r} must be {what}.") from None
            if widget.validate(text) is not None and not widget.validate(text).is_valid:
                raise InputError(f"{dotted} = {text!r}: " + "; ".join(widget.validate(text).failure_descriptions))
        return out

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())
