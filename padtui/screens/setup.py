"""Setup: pick a dataset, a backbone and an LLM, adjust the stage settings, preview the config, launch.

Every change re-resolves the whole config with core.config.resolve (the same code the worker runs), so
what the preview shows is what the run will use and the first problem is named as you type. Launch
writes the choices as a tiny run-preset TOML (only what differs from the presets) and starts the worker
detached through the CLI.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Label, Select, Static

from core import assets
from core.config import config_to_toml, list_presets, read_toml, resolve, to_toml
from core.errors import InputError
from core.runs import iter_runs, pid_alive
from padtui.screens import commands
from padtui.screens.confirm import ConfirmScreen
from padtui.screens.fetch import FetchScreen
from padtui.screens.save_preset import SavePresetScreen
from padtui.widgets.backbone_picker import BackbonePicker
from padtui.widgets.config_preview import ConfigPreview
from padtui.widgets.dataset_picker import DatasetPicker
from padtui.widgets.llm_picker import LLMPicker
from padtui.widgets.picker import Picker
from padtui.widgets.stage_form import StageForm

DEFAULT_PRESET = "demo"
WHERE = "your settings"
WIDE = 120


def running_runs(runs_dir: Path) -> list[Path]:
    """Runs whose worker is alive (worker.pid names a live process)."""
    return [r.path for r in iter_runs(runs_dir) if (pid := r.worker_pid()) and pid_alive(pid)]


def _get(data: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part, {}) if isinstance(data, dict) else {}
    return data


def _set(data: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


class SetupScreen(Screen):
    BINDINGS = [
        Binding("f5", "launch", "Launch", id="setup.launch"),
        Binding("ctrl+s", "save_preset", "Save preset", id="setup.save"),
        Binding("f2", "app.history", "History", id="setup.history"),
        Binding("f3", "open_running", "Open running", id="setup.running"),
    ]

    def __init__(self, runs_dir: Path, preset: str | None = None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        presets = list_presets("runs")
        self.preset = preset if preset in presets else (DEFAULT_PRESET if DEFAULT_PRESET in presets
                                                        else next(iter(presets), ""))
        self.base: dict = {}
        self.data: dict | None = None  # the run preset the choices make (only keys that differ)
        self.running: list[Path] = []
        self.launching = False
        self.missing: list[str] = []  # offline assets the current settings read that are not fetched yet

    def compose(self) -> ComposeResult:
        presets = list_presets("runs")
        with Horizontal(id="setup-top"):
            yield Static("padtui · new run", classes="screen-title")
            yield Label("start from", id="preset-label")
            yield Select([(name, name) for name in presets], value=self.preset or Select.NULL,
                         allow_blank=not presets, compact=True, id="run-preset")
        yield Static("", id="running-banner")
        with VerticalScroll(id="setup-body"):
            with Horizontal(id="pickers"):
                yield DatasetPicker(id="dataset", classes="picker")
                yield BackbonePicker(id="backbone", classes="picker")
                yield LLMPicker(id="llm", classes="picker")
            with Horizontal(id="settings"):
                yield StageForm(id="form")
                yield ConfigPreview(id="preview")
        with Horizontal(id="action-bar"):
            yield Static("", id="validation")
            yield Button("Save preset ^S", id="save", compact=True)
            yield Button("Launch ▶ F5", id="launch", variant="success", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#settings").border_title = "stage settings · resolved config"
        self.query_one("#preview").border_title = "config.toml preview"
        self.set_class(self.size.width < WIDE, "-narrow")
        self.load_preset(self.preset)
        self.query_one("#dataset .picker-list").focus()
        self._scan_running()

    def on_resize(self, event) -> None:
        self.set_class(event.size.width < WIDE, "-narrow")

    def on_screen_resume(self) -> None:
        self._scan_running()

    # ───────────── presets ─────────────

    def load_preset(self, name: str) -> None:
        self.preset = name
        try:
            self.base = read_toml(list_presets("runs")[name]) if name else {}
            cfg = resolve(self.base, name, name)
        except (InputError, KeyError) as exc:
            self.notify(str(exc), title="preset", severity="error")
            self.base = {}
            return
        with self.prevent(Picker.Changed):
            for key in ("dataset", "backbone", "llm"):
                value = self.base.get(key, cfg.to_dict()[key]["preset"])
                self.query_one(f"#{key}", Picker).select_value(value)
        self.query_one(StageForm).set_values(cfg)
        self.revalidate()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "run-preset" and event.value is not Select.NULL and event.value != self.preset:
            self.load_preset(str(event.value))

    # ───────────── validation as you type ─────────────

    def on_picker_changed(self, _event: Picker.Changed) -> None:
        self.revalidate()

    def on_stage_form_changed(self, _event: StageForm.Changed) -> None:
        self.revalidate()

    def build_data(self) -> dict:
        """The run preset the current choices make: base preset + pickers + the form's changed keys."""
        data = copy.deepcopy(self.base)
        for key in ("dataset", "backbone", "llm"):
            value = self.query_one(f"#{key}", Picker).value
            if value is not None:
                data[key] = copy.deepcopy(value)
        form = self.query_one(StageForm).values()
        baseline = resolve(data, WHERE, self.preset).to_dict()
        for dotted, value in form.items():
            if _get(baseline, dotted) != value:
                _set(data, dotted, value)
        return data

    def revalidate(self) -> None:
        status = self.query_one("#validation", Static)
        preview = self.query_one(ConfigPreview)
        try:
            data = self.build_data()
            cfg = resolve(data, WHERE, self.preset)
        except InputError as exc:
            self.data = None
            status.update(f"✗ {exc}")
            status.set_class(True, "-invalid")
            preview.show_error(str(exc))
        else:
            self.data = data
            self.missing = assets.needed(cfg)
            what = f"{cfg.dataset.preset or cfg.dataset.source} · {cfg.backbone.kind} · {cfg.llm.preset or cfg.llm.model}"
            if self.missing:
                status.update(f"↓ not fetched yet: {', '.join(self.missing)} — F5 fetches, then launches ({what})")
            else:
                status.update(f"✓ ready: {what}")
            status.set_class(False, "-invalid")
            preview.show(config_to_toml(cfg))
        self.query_one("#launch", Button).disabled = self.data is None or self.launching

    # ───────────── launch / save ─────────────

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()
        elif event.button.id == "save":
            self.action_save_preset()

    def preset_text(self) -> str:
        assert self.data is not None
        return f"# written by padtui's setup screen (based on '{self.preset}')\n" + to_toml(self.data)

    def action_launch(self, confirmed: bool = False) -> None:
        if self.launching:
            return
        if self.data is None:
            self.notify("Fix the settings first: " + str(self.query_one("#validation", Static).render()),
                        severity="error")
            return
        if self.running and not confirmed:  # a second training on the same cores is a decision, not a default
            names = ", ".join(p.name for p in self.running[:3])
            question = (f"{names} {'is' if len(self.running) == 1 else 'are'} training on this machine. Two "
                        f"trainings at once share the cores and each runs several times slower (3–6× on 2 "
                        f"cores). Launch anyway?")
            self.app.push_screen(ConfirmScreen(question), lambda yes: self.action_launch(confirmed=True) if yes else None)
            return
        if self.missing:  # the first launch on a fresh machine: fetch what the run reads, visibly, then launch
            def fetched(ok: bool | None) -> None:
                self.revalidate()
                if ok and not self.missing:
                    self.action_launch(confirmed=True)

            self.app.push_screen(FetchScreen(self.missing), fetched)
            return
        path = self.runs_dir / ".presets" / f"{self.preset or 'custom'}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.preset_text(), encoding="utf-8")
        self.launching = True
        self.query_one("#launch", Button).disabled = True
        self.query_one("#validation", Static).update("▶ launching…")
        self._launch(path)

    @work(thread=True, exclusive=True, group="launch")
    def _launch(self, preset_path: Path) -> None:
        try:
            run = commands.launch(preset_path, self.runs_dir)
        except (commands.CommandError, OSError) as exc:
            self.app.call_from_thread(self._launch_done, None, str(exc))
        else:
            self.app.call_from_thread(self._launch_done, run, "")

    def _launch_done(self, run: Path | None, error: str) -> None:
        self.launching = False
        self.revalidate()
        if run is None:
            self.notify(error, title="launch failed", severity="error", timeout=20)
            return
        self.app.open_run(run)

    def action_save_preset(self) -> None:
        if self.data is None:
            self.notify("Fix the settings first.", severity="error")
            return
        folder = commands.user_presets_dir() / "runs"

        def save(answer: dict | None) -> None:
            if not answer or self.data is None:
                return
            data = {"description": answer["description"], **{k: v for k, v in self.data.items()
                                                              if k != "description"}}
            if not answer["description"]:
                data.pop("description")
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{answer['name']}.toml"
            target.write_text(f"# saved by padtui's setup screen\n{to_toml(data)}", encoding="utf-8")
            self.notify(f"Saved {target}")
            select = self.query_one("#run-preset", Select)
            with self.prevent(Select.Changed):
                select.set_options([(n, n) for n in list_presets("runs")])
                select.value = answer["name"] if answer["name"] in list_presets("runs") else self.preset
            if answer["name"] in list_presets("runs"):
                self.base, self.preset = data, answer["name"]

        self.app.push_screen(
            SavePresetScreen(folder, name=f"{self.preset}-custom", description=self.base.get("description", "")),
            save,
        )

    # ───────────── running runs ─────────────

    @work(thread=True, exclusive=True, group="scan")
    def _scan_running(self) -> None:
        self.app.call_from_thread(self._show_running, running_runs(self.runs_dir))

    def _show_running(self, running: list[Path]) -> None:
        self.running = running
        banner = self.query_one("#running-banner", Static)
        banner.display = bool(running)
        if running:
            names = ", ".join(p.name for p in running[:3]) + (f" +{len(running) - 3}" if len(running) > 3 else "")
            banner.update(f"▶ running: {names} — F3 opens {'it' if len(running) == 1 else 'the history'}")
        self.refresh_bindings()

    def action_fetch_assets(self) -> None:
        if not self.missing:
            self.notify("Every asset these settings read is fetched.", title="assets")
            return
        self.app.push_screen(FetchScreen(self.missing), lambda ok: self.revalidate())

    def action_open_running(self) -> None:
        if len(self.running) == 1:
            self.app.open_run(self.running[0])
        elif self.running:
            self.app.action_history()
        else:
            self.notify("Nothing is running. F5 launches a run; F2 lists the finished ones.", title="F3")

    def palette_commands(self):
        yield ("Launch", "start the run with these settings (F5)", self.action_launch)
        yield ("Fetch assets", "download the offline assets these settings read (ml-100k, smollm2, minilm)",
               self.action_fetch_assets)
        yield ("Save as run preset", "write these choices as a preset (ctrl+s)", self.action_save_preset)
        yield ("Compute dataset stats", "users, items, interactions of the chosen dataset",
               self.query_one(DatasetPicker).action_stats)
