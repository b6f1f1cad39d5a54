"""F1: every key of every screen, read from the bindings themselves so the list cannot go stale."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

ABOUT = (
    "padtui runs PAD (pre-train → align → disentangle). Launch starts a detached worker: quitting, closing "
    "the terminal or losing SSH leaves it running; `padtui attach RUN` re-opens its monitor. Stop sends "
    "SIGTERM (checkpoint, clean exit); resume continues from the checkpoint. No mouse needed: tab / "
    "shift+tab move focus, arrows move in lists, enter chooses."
)


def _screens():
    from padtui.app import PadApp
    from padtui.screens.compare import CompareScreen
    from padtui.screens.dataset_source import HubDatasetScreen, LocalFileScreen
    from padtui.screens.history import HistoryScreen
    from padtui.screens.monitor import MonitorScreen
    from padtui.screens.setup import SetupScreen
    from padtui.widgets.dataset_picker import DatasetPicker

    return [
        ("everywhere", PadApp.BINDINGS + [Binding("ctrl+p", "command_palette", "Command palette")]),
        ("setup", SetupScreen.BINDINGS), ("setup · dataset list", DatasetPicker.BINDINGS),
        ("hub dataset / local file forms", HubDatasetScreen.BINDINGS or LocalFileScreen.BINDINGS),
        ("monitor", MonitorScreen.BINDINGS), ("history", HistoryScreen.BINDINGS), ("compare", CompareScreen.BINDINGS),
    ]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="help.close")]

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str, str]] = []  # (where, key, description)

    def compose(self) -> ComposeResult:
        sections = []
        for where, bindings in _screens():
            table = Table.grid(padding=(0, 2))
            table.add_column(no_wrap=True, style="bold", min_width=8)
            table.add_column()
            for binding in bindings:
                if isinstance(binding, Binding) and binding.description:
                    key = self.app.get_key_display(binding)
                    self.lines.append((where, key, binding.description))
                    table.add_row(key, binding.description)
            sections += [Text(where, style="underline"), table, Text("")]
        with VerticalScroll(classes="dialog help-dialog"):
            yield Static("padtui — keys", classes="dialog-title")
            yield Static(ABOUT, classes="dialog-text")
            yield Static(Group(*sections))
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_dismiss(self) -> None:
        self.dismiss(None)
