"""`padtui presets list | show | validate | copy`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.table import Table
from core.config import PRESET_KINDS, list_presets, load_run_config, preset_path, read_toml
from core.errors import InputError
from padtui import output


def cmd_presets(args) -> int:
    if args.action == "list":
        for kind in PRESET_KINDS:
            table = Table(title=kind, title_justify="left")
            table.add_column("name")
            table.add_column("description")
            for name, path in list_presets(kind).items():
                table.add_row(name, str(read_toml(path).get("description", "")))
            output.console.print(table)
        return 0
    if not args.name:
        raise InputError(f"padtui presets {args.action}: give a preset name or file.")
    if args.action == "show":
        cfg = load_run_config(args.name)
        from core.config import config_to_toml

        sys.stdout.write(config_to_toml(cfg))  # plain: valid TOML, never re-wrapped
        return 0
    if args.action == "validate":
        cfg = load_run_config(args.name)
        output.console.print(f"ok: {args.name} → dataset {cfg.dataset.preset or cfg.dataset.source}, backbone "
                      f"{cfg.backbone.kind}, llm {cfg.llm.model}")
        return 0
    if args.action == "copy":
        if not args.dest:
            raise InputError("padtui presets copy NAME DEST: give a destination file.")
        kind, source = _find_any_preset(args.name)
        dest = Path(args.dest)
        if dest.suffix != ".toml" and os.sep not in args.dest:  # a bare name: a preset of the same kind, by name
            from core.config import user_presets_dir

            dest = user_presets_dir() / kind / f"{args.dest}.toml"
        elif not dest.parent.is_dir():
            raise InputError(f"{dest}: the folder {dest.parent} does not exist. Create it first, or give a bare "
                             f"name to copy into your presets folder.")
        if dest.exists():
            raise InputError(f"{dest}: already exists; choose another destination.")
        from core.atomic import atomic_write_text

        try:
            atomic_write_text(dest, source.read_text())
        except OSError as exc:
            raise InputError(f"{dest}: cannot write ({exc.strerror or exc}). Choose a writable destination.") from None
        output.console.print(f"copied {source} → {dest}")
        return 0
    raise InputError(f"unknown presets action '{args.action}'")


def _find_any_preset(name: str) -> tuple[str, Path]:
    for kind in PRESET_KINDS:
        if name in list_presets(kind):
            return kind, preset_path(kind, name)
    raise InputError(f"unknown preset '{name}'. `padtui presets list` shows them all.")
