"""`padtui show RUN --neighbors TITLE`: nearest items by LLM embedding and by each expert's item vectors —
the sanity check researchers otherwise do by hand."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from core.config import load_saved_config
from core.data import load_data
from core.errors import InputError
from core.runs import RunFolder


def find_item(texts: list[str], query: str) -> int:
    """Item id whose text equals or starts with / contains the query (case-insensitive)."""
    q = query.strip().lower()
    for rule in (lambda t: t == q, lambda t: t.startswith(q), lambda t: q in t):
        hits = [i + 1 for i, t in enumerate(texts) if rule(t.lower())]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            if all(texts[h - 1].lower() == texts[hits[0] - 1].lower() for h in hits):
                return hits[0]
            shown = "; ".join(texts[h - 1] for h in hits[:5])
            raise InputError(f"--neighbors '{query}' matches {len(hits)} items ({shown}…). Give more of the title.")
    raise InputError(f"--neighbors '{query}': no item text contains it. Try part of a title, e.g. '{texts[0][:30]}'.")


@torch.no_grad()
def neighbors(run: RunFolder, query: str, k: int = 8) -> dict[str, list[tuple[str, float]]]:
    from core.engine import load_weights
    from core.stages import aligned_model, build_disentangle, pretrain_model
    from core.text import embed_items, nearest_items

    cfg = load_saved_config(run.config_path)
    data = load_data(cfg.dataset, cfg.stages.disentangle.n_bins, log=lambda m: None)
    item = find_item(data.item_texts, query)
    llm = None

    def llm_table():
        nonlocal llm
        if llm is None:
            llm = embed_items(data.item_texts, cfg.llm, cfg.dataset.items.text, data.item_map_hash, device="cpu")
        return llm

    ctx = SimpleNamespace(cfg=cfg, data=data, run=run, llm_table=llm_table)
    ctx.trained = lambda stage, model: (load_weights(model, run.checkpoints / stage / "best.safetensors"), model)[1]
    tables: dict[str, torch.Tensor] = {}
    header = f"'{data.item_texts[item - 1]}' (item {item}, bin {int(data.item_bin[item])}, training freq {int(data.item_freq[item])})"
    tables[f"LLM embedding ({cfg.llm.model}) — {header}"] = llm_table()
    done = run.results().get("stages", {})
    if "pretrain" in done:
        tables["stage 1: ID expert E_id"] = ctx.trained("pretrain", pretrain_model(ctx)).tables()[0]
    if "align" in done:
        tables["stage 2: aligned expert ê"] = ctx.trained("align", aligned_model(ctx)).tables()[0]
    if "disentangle" in done:
        model = ctx.trained("disentangle", build_disentangle(ctx).model)
        for name, table in zip(model.names, model.tables()):
            tables[f"stage 3: {name} expert"] = table
    return {title: [(data.item_texts[i - 1], s) for i, s in nearest_items(t.detach(), item, k)] for title, t in tables.items()}

