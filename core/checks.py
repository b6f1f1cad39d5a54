"""Everything that can be checked before training starts, so a typo never costs an hour of stage 1."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from core.config import RunConfig
from core.errors import InputError, first_line
from core.runs import check_writable


FULL_LOGITS_WARN_BYTES = 2 * 2**30  # a full-softmax step above this is worth a warning before training


def check_llm(cfg: RunConfig, item_map_hash: str) -> None:
    """The LLM is either already embedded (cache) or loadable: asset fetched, folder present, hub reachable."""
    from core import text

    if text_cached(cfg, item_map_hash):
        return
    where, gguf, local = text._locate(cfg.llm)  # raises InputError for a missing asset / folder / gguf
    if local:
        folder = Path(where)
        if not gguf and not (folder / "config.json").is_file():
            found = sorted(p.name for p in folder.glob("*.gguf"))
            if found:
                raise InputError(f"llm.model = '{cfg.llm.model}' holds {', '.join(found)} but llm.gguf_file is empty: "
                                 f"set llm.gguf_file = \"auto\" (one .gguf) or name the file.")
            raise InputError(
                f"llm.model = '{cfg.llm.model}': the folder {folder} holds no config.json (and no .gguf file), so "
                f"it is not a transformers model. Point llm.model at the folder `save_pretrained` wrote, name a "
                f"GGUF with llm.gguf_file, or use an offline asset preset (`--set llm=minilm`)."
            )
        return
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(where, revision=cfg.llm.revision or None, timeout=10)
    except Exception as exc:
        reason = first_line(exc, 200)
        raise InputError(
            f"llm.model = '{where}': the Hugging Face hub cannot be reached or has no such model ({reason}). "
            "Check the id and your network (`huggingface-cli login` for gated models); offline, point llm.model at "
            "a local folder, or use an offline asset preset (`--set llm=minilm` or `--set llm=smollm2-135m`, after "
            "`padtui assets fetch`)."
        ) from None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def preflight(cfg: RunConfig, stages: list[str], runs_dir: Path, warn: Callable[[str], None] = _stderr,
              fetch: Callable[[list[str]], None] | None = None):
    """Runs folder writable, dataset loads with its columns and filters, LLM reachable or cached — all before
    a run folder exists, so bad input costs seconds, not a stage. Warnings (items without text) go to `warn`.
    `fetch(names)` gets the offline assets the run reads that are missing: the dataset's before the data is
    checked, the LLM's after (so a data problem is named before a long download)."""
    check_writable(runs_dir)
    from core import assets, trackers
    from core.data import load_data

    trackers.check(cfg.train.log_with)

    missing = assets.needed(cfg, stages) if fetch else []
    data_assets = [n for n in missing if cfg.dataset.source == "asset" and n in (cfg.dataset.path, cfg.dataset.items.path)]
    if data_assets:
        fetch(data_assets)

    data = load_data(cfg.dataset, cfg.stages.disentangle.n_bins, log=lambda m: None)
    name = cfg.dataset.preset or cfg.dataset.path
    if data.n_items < 2:
        raise InputError(
            f"dataset '{name}': only {data.n_items} item left after filtering (dataset.filter); ranking needs at "
            f"least 2. Lower dataset.filter.min_user_interactions or dataset.filter.min_rating."
        )
    if data.missing_text:
        warn(f"warning: dataset '{name}': {data.missing_text} of {data.n_items} items have no text in the item "
             f"table ({cfg.dataset.items.path or 'none'}); their item id is used as their text. Check "
             f"dataset.items.key and dataset.items.text if that is not intended.")
    for stage in stages:
        sc = getattr(cfg.stages, stage)
        logits = sc.batch_size * cfg.backbone.max_len * (data.n_items + 1) * 4 * 3  # scores, softmax, gradient
        if sc.loss == "ce" and logits > FULL_LOGITS_WARN_BYTES:
            warn(f"warning: stages.{stage}.loss = 'ce' scores every position against all {data.n_items:,} items: "
                 f"about {logits / 2**30:.1f} GiB of logits per step (batch_size {sc.batch_size} × max_len "
                 f"{cfg.backbone.max_len}). On a catalogue this size use loss = \"sampled_softmax\" (as the "
                 f"scale-200k preset does) or a smaller stages.{stage}.batch_size.")
    if any(s in stages for s in ("align", "disentangle")):
        rest = [n for n in missing if n not in data_assets]
        if rest and not text_cached(cfg, data.item_map_hash):  # an LLM already embedded needs no model files
            fetch(rest)
        check_llm(cfg, data.item_map_hash)
    return data


def text_cached(cfg: RunConfig, item_map_hash: str) -> bool:
    from core import text

    return text.embedding_cache_path(cfg.llm, cfg.dataset.items.text, item_map_hash).is_file()
