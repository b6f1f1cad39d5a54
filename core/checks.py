"""Everything that can be checked before training starts, so a typo never costs an hour of stage 1."""

from __future__ import annotations

from pathlib import Path

from core.config import RunConfig
from core.errors import InputError
from core.runs import check_writable


def check_llm(cfg: RunConfig, item_map_hash: str) -> None:
    """The LLM is either already embedded (cache) or loadable: asset fetched, folder present, hub reachable."""
    from core import text

    path = text.embedding_cache_path(cfg.llm, cfg.dataset.items.text, item_map_hash)
    if path.is_file():
        return
    where, gguf, local = text._locate(cfg.llm)  # raises InputError for a missing asset / folder / gguf
    if local:
        return
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(where, revision=cfg.llm.revision or None, timeout=10)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"llm.model = '{where}': the Hugging Face hub cannot be reached or has no such model ({reason}). "
            "Check the id and your network (`huggingface-cli login` for gated models); offline, point llm.model at "
            "a local folder or use an offline asset preset (`--set llm=smollm2-135m` or `minilm`)."
        ) from None


def preflight(cfg: RunConfig, stages: list[str], runs_dir: Path):
    """Runs folder writable, dataset loads with its columns and filters, LLM reachable or cached."""
    check_writable(runs_dir)
    from core.data import load_data

    data = load_data(cfg.dataset, cfg.stages.disentangle.n_bins, log=lambda m: None)
    if data.n_items < 2:
        raise InputError(f"dataset '{cfg.dataset.preset or cfg.dataset.path}': only {data.n_items} item left after filtering.")
    if any(s in stages for s in ("align", "disentangle")):
        check_llm(cfg, data.item_map_hash)
    return data
