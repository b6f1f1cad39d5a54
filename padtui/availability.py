"""Whether a model or an offline asset is here already: what the pickers and the setup forms show next to a name
(no widgets here, so the screens and the pickers both import it without importing each other)."""

from __future__ import annotations

import os
from pathlib import Path


def fetched_assets() -> set[str]:
    """Names of offline assets already fetched (core.assets may not exist yet: then none)."""
    try:
        from core.assets import list_assets

        return {a["name"] for a in list_assets() if a.get("fetched")}
    except Exception:
        return set()


def hf_cached(model_id: str) -> bool:
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface"), "hub"
    )
    return (Path(hub) / f"models--{model_id.replace('/', '--')}").is_dir()


def availability(model: str, fetched: set[str]) -> tuple[str, str]:
    """(short tag, sentence) for a model reference."""
    if model.startswith("asset:"):
        name = model.split(":", 1)[1]
        if name in fetched:
            return "offline ✓", "offline asset, cached"
        return "offline ✗", f"offline asset, not fetched yet: F5 fetches it before the launch (or `padtui assets fetch {name}`)"
    if model.startswith(("/", "~", ".")) or Path(model).expanduser().is_dir():
        ok = Path(model).expanduser().is_dir()
        return ("local ✓" if ok else "local ✗"), ("local folder" if ok else "local folder not found")
    if hf_cached(model):
        return "hub ✓", "Hugging Face hub, cached"
    return "hub", "Hugging Face hub: downloaded on first use"
