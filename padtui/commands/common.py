"""What several commands share: a run named the way the app shows it."""

from __future__ import annotations

from pathlib import Path

from core.errors import InputError
from core.runs import iter_runs


def find_run(name: str, runs_dir: Path) -> Path:
    """A run (or seed group) given as a path, or by the name `padtui runs`, the history and the banners print
    (looked up in the runs folder, seed groups included). Anything else is an InputError."""
    path = Path(name)
    if (path / "config.toml").is_file() or (path / "group.json").is_file():
        return path
    inside = Path(runs_dir) / name
    if (inside / "config.toml").is_file() or (inside / "group.json").is_file():
        return inside
    matches = [r.path for r in iter_runs(Path(runs_dir)) if r.name == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InputError(f"run name '{name}' matches {len(matches)} runs in {runs_dir} "
                         f"({', '.join(str(m) for m in matches[:3])}); pass the path.")
    if path.is_dir():
        raise InputError(f"{name}: not a run folder (no config.toml). `padtui runs` lists the runs.")
    raise InputError(f"{name}: no such run folder, and no run of that name in {runs_dir}. `padtui runs` lists "
                     f"the runs (or pass --runs-dir).")
