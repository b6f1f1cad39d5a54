"""Forms for a dataset that is not a preset: a Hugging Face dataset, or a local file with a column mapping.

The local-file form reads the file's header (CSV / TSV / JSONL with the stdlib, Parquet with pyarrow's
schema reader) so the column pickers list the columns that are actually there.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static

ROLES = ("user", "item", "time", "rating")
HINTS = {
    "user": ("user", "uid", "customer", "reviewer", "session"),
    "item": ("item", "asin", "movie", "product", "track", "book"),
    "time": ("time", "date", "ts"),
    "rating": ("rating", "score", "stars"),
}


def read_columns(path: Path) -> list[str]:
    """Column names from the first line / object / schema; OSError or ValueError when unreadable."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = ""
        for line in fh:
            if line.strip():
                first = line
                break
    if not first:
        raise ValueError("the file is empty")
    if suffix in (".jsonl", ".ndjson", ".json"):
        text = first.strip()
        if text.startswith("["):
            text = text[1:].rstrip(",")
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("the first line is not a JSON object")
        return list(obj)
    delimiter = "\t" if "\t" in first else ("|" if first.count("|") > first.count(",") else ",")
    return [c.strip() for c in next(csv.reader([first], delimiter=delimiter))]


def guess(columns: list[str], role: str) -> str:
    lowered = [(c, c.lower()) for c in columns]
    for hint in HINTS[role]:
        for column, low in lowered:
            if low.split(":")[0] == hint or low.split(":")[0] == f"{hint}_id":
                return column
    for hint in HINTS[role]:
        for column, low in lowered:
            if hint in low:
                return column
    return ""


class _SourceForm(ModalScreen[dict | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="source.cancel"),
        Binding("ctrl+s", "use", "Use", id="source.use"),
    ]
    TITLE_TEXT = ""

    def compose_fields(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog form-dialog"):
            yield Static(self.TITLE_TEXT, classes="dialog-title")
            yield from self.compose_fields()
            yield Static("", id="form-error", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Use (ctrl+s)", id="use", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)
        yield Footer()

    def field(self, label: str, widget) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label(label, classes="form-label")
            yield widget

    def value(self, widget_id: str) -> str:
        widget = self.query_one(f"#{widget_id}")
        value = widget.value
        return "" if value is Select.NULL or value is None else str(value).strip()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_use() if event.button.id == "use" else self.action_cancel()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_use()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_use(self) -> None:
        try:
            result = self.result()
        except ValueError as exc:
            self.query_one("#form-error", Static).update(f"✗ {exc}")
            return
        self.dismiss(result)

    def result(self) -> dict:
        raise NotImplementedError


class HubDatasetScreen(_SourceForm):
    TITLE_TEXT = "Hugging Face dataset"

    def compose_fields(self) -> ComposeResult:
        yield from self.field("dataset id", Input(placeholder="owner/name", id="hub-path", compact=True))
        yield from self.field("config", Input(placeholder="(default)", id="hub-name", compact=True))
        yield from self.field("split", Input("train", id="hub-split", compact=True))
        yield from self.field("revision", Input(placeholder="main (pin a commit for reproducibility)",
                                                id="hub-revision", compact=True))
        yield Static("columns", classes="form-section")
        for role, default in (("user", "user_id"), ("item", "item_id"), ("time", "timestamp"), ("rating", "")):
            yield from self.field(role, Input(default, placeholder="(none)" if role == "rating" else "",
                                              id=f"hub-col-{role}", compact=True))
        yield Static("item texts (optional)", classes="form-section")
        yield from self.field("items id", Input(placeholder="owner/name (same as above if empty)",
                                                id="hub-items-path", compact=True))
        yield from self.field("items config", Input(id="hub-items-name", compact=True))
        yield from self.field("key", Input("item_id", id="hub-items-key", compact=True))
        yield from self.field("text", Input(placeholder="{title}. {description}", id="hub-items-text", compact=True))

    def on_mount(self) -> None:
        self.query_one("#hub-path").focus()

    def result(self) -> dict:
        path = self.value("hub-path")
        if not path:
            raise ValueError("dataset id is required, e.g. McAuley-Lab/Amazon-Reviews-2023.")
        out: dict = {"source": "hub", "path": path, "split": self.value("hub-split") or "train"}
        for key in ("name", "revision"):
            if self.value(f"hub-{key}"):
                out[key] = self.value(f"hub-{key}")
        out["columns"] = {role: self.value(f"hub-col-{role}") for role in ROLES}
        if self.value("hub-items-text"):
            out["items"] = {"path": self.value("hub-items-path") or path, "key": self.value("hub-items-key"),
                            "split": self.value("hub-split") or "train", "text": self.value("hub-items-text")}
            if self.value("hub-items-name"):
                out["items"]["name"] = self.value("hub-items-name")
        return out


class LocalFileScreen(_SourceForm):
    TITLE_TEXT = "Local file (CSV / TSV / JSONL / Parquet)"

    def __init__(self) -> None:
        super().__init__()
        self.columns: list[str] = []
        self.item_columns: list[str] = []

    def compose_fields(self) -> ComposeResult:
        yield from self.field("file", Input(placeholder="/path/to/interactions.csv", id="local-path", compact=True))
        yield Static("columns: type a path", id="local-columns", classes="form-hint")
        for role in ROLES:
            yield from self.field(role, Select([], prompt="(none)", id=f"local-col-{role}", compact=True))
        yield Static("item texts (optional)", classes="form-section")
        yield from self.field("items file", Input(placeholder="/path/to/items.csv", id="local-items-path",
                                                  compact=True))
        yield Static("", id="local-items-columns", classes="form-hint")
        yield from self.field("key", Select([], prompt="(none)", id="local-items-key", compact=True))
        yield from self.field("text", Input(placeholder="{title} ({year}). Genres: {genres}", id="local-items-text",
                                            compact=True))

    def on_mount(self) -> None:
        self.query_one("#local-path").focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("local-path", "local-items-path"):
            self._read_header(event.input.id, event.value)

    @work(thread=True, group="header", exclusive=True)
    def _read_header(self, which: str, text: str) -> None:
        path = Path(text.strip()).expanduser()
        if not text.strip() or not path.is_file():
            columns, message = [], ("file not found" if text.strip() else "type a path")
        else:
            try:
                columns, message = read_columns(path), ""
            except (OSError, ValueError, ImportError) as exc:
                columns, message = [], f"cannot read the header: {exc}"
        self.app.call_from_thread(self._show_columns, which, columns, message)

    def _show_columns(self, which: str, columns: list[str], message: str) -> None:
        hint = "#local-columns" if which == "local-path" else "#local-items-columns"
        self.query_one(hint, Static).update(f"columns: {', '.join(columns)}" if columns else message)
        options = [(c, c) for c in columns]
        if which == "local-path":
            self.columns = columns
            for role in ROLES:
                select = self.query_one(f"#local-col-{role}", Select)
                select.set_options(options)
                if guess(columns, role):
                    select.value = guess(columns, role)
        else:
            self.item_columns = columns
            select = self.query_one("#local-items-key", Select)
            select.set_options(options)
            if guess(columns, "item"):
                select.value = guess(columns, "item")

    def result(self) -> dict:
        path = self.value("local-path")
        if not path or not Path(path).expanduser().is_file():
            raise ValueError(f"file {path!r} not found." if path else "file is required.")
        columns = {role: self.value(f"local-col-{role}") for role in ROLES}
        missing = [role for role in ("user", "item", "time") if not columns[role]]
        if missing:
            raise ValueError(f"choose the {', '.join(missing)} column(s) (rating is optional).")
        out: dict = {"source": "local", "path": str(Path(path).expanduser()), "columns": columns}
        if self.value("local-items-path"):
            if not self.value("local-items-key") or not self.value("local-items-text"):
                raise ValueError("an items file needs its key column and a text template.")
            out["items"] = {"path": str(Path(self.value("local-items-path")).expanduser()),
                            "key": self.value("local-items-key"), "text": self.value("local-items-text")}
        return out
