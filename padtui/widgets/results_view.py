"""The three-stage results table (test set), with the protocol above it and what it says, in words, below."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from padtui.results_table import protocol_line, results_table, verdict


class ResultsView(Static):
    def show(self, results: dict, waiting: str = "results appear as stages finish") -> None:
        if not results.get("stages"):
            self.update(Text(waiting, style="dim"))
            return
        words = [Text(line, style="yellow" if " loses " in line or "gave way" in line else "dim")
                 for line in verdict(results)]
        self.update(Group(Text(protocol_line(results), style="dim"), results_table(results), *words))
