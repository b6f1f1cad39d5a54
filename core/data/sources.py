"""Raw interactions and item tables from the four sources: hub, local file, offline asset, synthetic.

Every loader returns plain column arrays; everything after that (filtering, ordering, splitting) is shared.
Loading errors become `InputError`s that say what was tried and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from core.config import DatasetConfig
from core.errors import InputError

LOCAL_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def _hub_hint(path: str) -> str:
    return (
        f"Check the dataset id '{path}' (and name / split / revision), your network and `huggingface-cli login` for "
        "gated data; offline, download it elsewhere and point a `source = \"local\"` preset at the files, or use "
        "a bundled preset (`ml100k`, `synthetic`)."
    )


def load_hub(path: str, name: str, split: str, revision: str, what: str):
    import datasets

    try:
        return datasets.load_dataset(path, name or None, split=split or None, revision=revision or None)
    except Exception as exc:  # datasets raises many types (ConnectionError, DatasetNotFoundError, ValueError...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot load {what} '{path}' from the Hugging Face hub: {first[:300]}. {_hub_hint(path)}") from None


def load_local(path: str, what: str):
    import datasets

    file = Path(path).expanduser()
    if not file.exists():
        raise InputError(f"{what}: local file '{path}' not found. Check dataset.path (relative paths start at {os.getcwd()}).")
    suffix = file.suffix.lower() if file.is_file() else ""
    if file.is_dir():
        files = sorted(p for p in file.iterdir() if p.suffix.lower() in LOCAL_FORMATS)
        if not files:
            raise InputError(f"{what}: folder '{path}' holds no csv / json / jsonl / parquet files.")
        suffix = files[0].suffix.lower()
        data_files = [str(p) for p in files if p.suffix.lower() == suffix]
    else:
        data_files = [str(file)]
    if suffix not in LOCAL_FORMATS:
        raise InputError(f"{what}: '{path}' has an unknown format '{suffix}'. Use .csv, .tsv, .json, .jsonl or .parquet.")
    kwargs: dict[str, Any] = {}
    if suffix == ".tsv":
        kwargs["delimiter"] = "\t"
    try:
        return datasets.load_dataset(LOCAL_FORMATS[suffix], data_files=data_files, split="train", **kwargs)
    except Exception as exc:
        raise InputError(f"{what}: cannot read '{path}' as {LOCAL_FORMATS[suffix]}: {str(exc).splitlines()[0][:300]}") from None


def read_atomic_file(path: Path) -> dict[str, np.ndarray]:
    """A RecBole atomic file: tab-separated, typed headers like `item_id:token`; fields stay strings."""
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3, encoding="utf-8")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return {c: frame[c].to_numpy(dtype=object) for c in frame.columns}


def load_asset(name: str, suffix: str) -> dict[str, np.ndarray]:
    from core import assets

    folder = assets.require(name)
    files = sorted(Path(folder).rglob(f"*{suffix}"))
    if not files:
        raise InputError(f"asset '{name}' has no *{suffix} file in {folder}. Re-fetch it: `padtui assets fetch {name}`.")
    return read_atomic_file(files[0])


def _columns_of(table) -> list[str]:
    return list(table.keys()) if isinstance(table, dict) else list(table.column_names)


def _column(table, col: str) -> np.ndarray:
    if isinstance(table, dict):
        return np.asarray(table[col], dtype=object) if not isinstance(table[col], np.ndarray) else table[col]
    return np.asarray(table.with_format("numpy")[col]) if len(table) else np.array([], dtype=object)


def require_columns(table, wanted: dict[str, str], what: str, key_prefix: str) -> None:
    have = _columns_of(table)
    for role, col in wanted.items():
        if col and col not in have:
            raise InputError(
                f"{what}: column '{col}' (mapped by {key_prefix}.{role}) is not in the data. "
                f"Its columns are: {', '.join(have)}. Set {key_prefix}.{role} to one of them."
            )


def load_interactions(cfg: DatasetConfig, seed: int) -> dict[str, np.ndarray]:
    """user / item / time (/ rating) arrays, in source order."""
    cols = {"user": cfg.columns.user, "item": cfg.columns.item, "time": cfg.columns.time, "rating": cfg.columns.rating}
    if cfg.source == "synthetic":
        from core.data.synthetic import generate

        table, _ = generate(cfg.synthetic, seed=0)
        cols = {"user": "user_id", "item": "item_id", "time": "timestamp", "rating": "rating"}
    elif cfg.source == "asset":
        table = load_asset(cfg.path, ".inter")
    elif cfg.source == "local":
        table = load_local(cfg.path, "dataset")
    else:
        table = load_hub(cfg.path, cfg.name, cfg.split, cfg.revision, "dataset")
    what = f"dataset '{cfg.preset or cfg.path}'"
    require_columns(table, cols, what, "dataset.columns")
    out = {
        "user": np.asarray(_column(table, cols["user"])).astype(str),
        "item": np.asarray(_column(table, cols["item"])).astype(str),
    }
    if cols["time"]:
        raw_time = _column(table, cols["time"])
        try:
            out["time"] = np.asarray(raw_time, dtype=np.float64)
        except (TypeError, ValueError):
            import pandas as pd

            try:
                out["time"] = pd.to_datetime(pd.Series(raw_time)).astype("int64").to_numpy() / 1e9
            except Exception:
                raise InputError(
                    f"{what}: column '{cols['time']}' (dataset.columns.time) is neither numbers nor dates, "
                    f"e.g. {raw_time[0]!r}. Map a timestamp column or leave time empty to keep file order."
                ) from None
    else:
        out["time"] = np.zeros(len(out["user"]))
    if cols["rating"]:
        try:
            out["rating"] = np.asarray(_column(table, cols["rating"]), dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{what}: column '{cols['rating']}' (dataset.columns.rating) is not numeric.") from None
    return out


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(_as_text(v) for v in value if _as_text(v))
    return str(value).strip()


def load_item_texts(cfg: DatasetConfig, raw_ids: list[str]) -> tuple[list[str], int]:
    """Text of each raw item id from the item table and template; items without text use their id."""
    template = cfg.items.text
    if cfg.source == "synthetic":
        from core.data.synthetic import generate

        _, table = generate(cfg.synthetic, seed=0)
        key = "item_id"
    elif not cfg.items.path:
        return [rid for rid in raw_ids], 0
    else:
        key = cfg.items.key
        if cfg.source == "asset" and not Path(cfg.items.path).suffix:
            table = load_asset(cfg.items.path, ".item")
        elif cfg.source == "hub" and not Path(cfg.items.path).is_file():
            # a hub id, or a local folder laid out like a hub repo: `datasets` resolves both
            table = load_hub(cfg.items.path, cfg.items.name, cfg.items.split, cfg.items.revision, "item table")
        else:
            table = load_local(cfg.items.path, "item table")
    require_columns(table, {"key": key}, "item table", "dataset.items")
    columns = _columns_of(table)
    keys = np.asarray(_column(table, key)).astype(str)
    index = {k: i for i, k in enumerate(keys)}
    needed = [c for c in columns if "{" + c + "}" in template]
    values = {c: _column(table, c) for c in needed}
    texts, missing = [], 0
    for rid in raw_ids:
        row = index.get(rid)
        if row is None:
            texts.append(rid)
            missing += 1
            continue
        fields = {c: _as_text(values[c][row]) for c in needed}
        fields.setdefault("item_id", rid)
        try:
            text = template.format_map(fields)
        except KeyError as exc:
            raise InputError(
                f"dataset.items.text: the template names column {exc} which the item table lacks. "
                f"Its columns are: {', '.join(columns)}."
            ) from None
        except (ValueError, IndexError) as exc:
            raise InputError(f"dataset.items.text: malformed template {template!r}: {exc}.") from None
        if needed and not any(fields[c] for c in needed):
            texts.append(rid)
            missing += 1
        else:
            texts.append(" ".join(text.split()))
    return texts, missing
