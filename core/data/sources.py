"""Raw interactions and item tables from the four sources: hub, local file, offline asset, synthetic.

Every loader returns the same compact form: user and item ids as integer codes into lists of the distinct raw
ids, time and rating as float arrays; everything after that (filtering, ordering, splitting) is shared. Files
and hub datasets stay memory-mapped Arrow tables and are encoded in streaming batches (`Dataset.map`), so a
dataset of millions of interactions never becomes millions of Python strings. Loading errors become
`InputError`s that say what was tried and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from core.config import DatasetConfig
from core.errors import InputError, first_line

ENCODE_BATCH = 100_000  # rows per Arrow batch when encoding a `datasets` table (bounds the Python-side work)
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
        raise InputError(f"cannot load {what} '{path}' from the Hugging Face hub: {first_line(exc)}. {_hub_hint(path)}") from None


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
    if all(os.path.getsize(f) == 0 for f in data_files):
        raise InputError(f"{what}: '{path}' is empty (0 bytes). Point {what}.path at a file with a header and rows.")
    import logging

    # datasets' own logging can trip over a bad file and print a traceback; the error below says what is wrong
    raising, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        return datasets.load_dataset(LOCAL_FORMATS[suffix], data_files=data_files, split="train", **kwargs)
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, UnicodeDecodeError):
            why = f"it is not UTF-8 text ({cause.reason} at byte {cause.start}). Re-save it as UTF-8"
        elif "corresponds to no data" in str(exc) or type(cause).__name__ == "EmptyDataError":
            why = "it has no rows (a header at most). Add the interactions"
        else:
            why = f"{first_line(exc)}. Check that it is a well-formed {LOCAL_FORMATS[suffix]} file"
        raise InputError(f"{what}: cannot read '{path}' as {LOCAL_FORMATS[suffix]}: {why}.") from None
    finally:
        logging.raiseExceptions = raising


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


def require_columns(table, wanted: dict[str, str], what: str, key_prefix: str) -> None:
    have = _columns_of(table)
    for role, col in wanted.items():
        if col and col not in have:
            raise InputError(
                f"{what}: column '{col}' (mapped by {key_prefix}.{role}) is not in the data. "
                f"Its columns are: {', '.join(have)}. Set {key_prefix}.{role} to one of them."
            )


def _seconds(values, what: str, col: str) -> np.ndarray:
    """A time column as float seconds: numbers as they are, dates and date strings since the epoch."""
    import pandas as pd

    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    try:
        stamps = pd.to_datetime(pd.Series(values), utc=True)
        return ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    except Exception:
        raise InputError(
            f"{what}: column '{col}' (dataset.columns.time) is neither numbers nor dates, e.g. {values[0]!r}. "
            f"Map a timestamp column or leave time empty to keep file order."
        ) from None


def _ratings(values, what: str, col: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what}: column '{col}' (dataset.columns.rating) is not numeric.") from None


def _encode_arrays(table: dict, cols: dict[str, str], what: str) -> dict:
    """A small in-memory table (an asset file): ids to codes with numpy."""
    out: dict = {}
    for role in ("user", "item"):
        vocab, codes = np.unique(np.asarray(table[cols[role]]).astype(str), return_inverse=True)
        out[role], out[f"{role}_ids"] = codes.astype(np.int64), vocab.tolist()
    n = len(out["user"])
    out["time"] = _seconds(table[cols["time"]], what, cols["time"]) if cols["time"] else np.zeros(n)
    if cols["rating"]:
        out["rating"] = _ratings(table[cols["rating"]], what, cols["rating"])
    return out


def _encode_dataset(table, cols: dict[str, str], what: str) -> dict:
    """A `datasets.Dataset` (memory-mapped Arrow from a local file or the hub): user and item ids become integer
    codes in one streaming batched `map` over Arrow batches, so the millions of raw ids are never Python
    objects; only the distinct ids (`Dataset.unique`) and the compact code / time / rating columns are kept."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(table) == 0:
        return {"user": np.zeros(0, np.int64), "item": np.zeros(0, np.int64), "time": np.zeros(0),
                "user_ids": [], "item_ids": []}
    schema = table.data.schema
    vocab = {role: pa.array(table.unique(cols[role]), type=schema.field(cols[role]).type) for role in ("user", "item")}

    def encode(batch: pa.Table) -> pa.Table:
        out = {role: pc.index_in(batch[cols[role]], value_set=vocab[role]) for role in ("user", "item")}
        if cols["time"]:
            out["time"] = pa.array(_seconds(batch[cols["time"]].to_numpy(zero_copy_only=False), what, cols["time"]))
        if cols["rating"]:
            out["rating"] = pa.array(_ratings(batch[cols["rating"]].to_numpy(zero_copy_only=False), what, cols["rating"]))
        return pa.table(out)

    coded = table.with_format("arrow").map(
        encode, batched=True, batch_size=ENCODE_BATCH, remove_columns=table.column_names, keep_in_memory=True,
        desc="encoding interactions",
    )
    out = {name: coded.data.column(name).to_numpy() for name in coded.column_names}
    out["user"], out["item"] = out["user"].astype(np.int64), out["item"].astype(np.int64)
    if not cols["time"]:
        out["time"] = np.zeros(len(out["user"]))
    bad = np.zeros(len(out["user"]), dtype=bool)
    for role in ("user", "item"):
        values = vocab[role].to_pylist()
        floating = pa.types.is_floating(schema.field(cols[role]).type)  # a numeric id column that had blanks
        ids = [_id_text(v, floating) for v in values]
        blank = np.asarray([i is None for i in ids] + [False], dtype=bool)
        bad |= blank[out[role]]
        out[f"{role}_ids"] = ["" if i is None else i for i in ids]
    if cols["time"]:
        bad |= ~np.isfinite(out["time"])
    out["bad"] = bad
    return out


def _id_text(value, floating: bool) -> str | None:
    """An id as text; None for a missing or blank one. Floats that are whole numbers lose their '.0' (a numeric
    id column with a blank cell is read as floats)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    if floating and float(value).is_integer():
        return str(int(value))
    text = str(value)
    return text if text.strip() else None


def load_interactions(cfg: DatasetConfig, seed: int) -> dict:
    """Interactions in source order: `user` and `item` as int64 codes into the raw-id lists `user_ids` and
    `item_ids`, `time` float64 (zeros when no time column is mapped), `rating` float64 when mapped."""
    cols = {"user": cfg.columns.user, "item": cfg.columns.item, "time": cfg.columns.time, "rating": cfg.columns.rating}
    what = f"dataset '{cfg.preset or cfg.path}'"
    if cfg.source == "synthetic":
        from core.data.synthetic import generate_interactions

        return generate_interactions(cfg.synthetic, seed=0)
    if cfg.source == "asset":
        table = load_asset(cfg.path, ".inter")
        require_columns(table, cols, what, "dataset.columns")
        return _encode_arrays(table, cols, what)
    table = load_local(cfg.path, "dataset") if cfg.source == "local" else load_hub(
        cfg.path, cfg.name, cfg.split, cfg.revision, "dataset")
    require_columns(table, cols, what, "dataset.columns")
    return _encode_dataset(table, cols, what)


def _item_rows(table, key: str, raw_ids: list[str]) -> np.ndarray:
    """Row of each raw item id in the item table (the first row with that key), −1 where there is none; the
    keys are compared as strings in Arrow, so a large item table is never turned into Python objects."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(table, dict):
        keys = pa.array(np.asarray(table[key]).astype(str).tolist(), type=pa.string())
    else:
        keys = pc.cast(table.data.column(key), pa.string())
    rows = pc.index_in(pa.array(raw_ids, type=pa.string()), value_set=keys)
    return pc.fill_null(rows, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _item_values(table, columns: list[str], rows: np.ndarray, batch_size: int = 10_000):
    """(number of rows, {column: values}) for `rows` in that order, batch by batch."""
    if isinstance(table, dict) or not columns:
        for start in range(0, len(rows), batch_size):
            part = rows[start: start + batch_size]
            yield len(part), {c: [table[c][r] for r in part] for c in columns}
        return
    chosen = table.select_columns(columns).select(rows)
    for start, batch in zip(range(0, len(rows), batch_size), chosen.iter(batch_size=batch_size)):
        yield min(batch_size, len(rows) - start), batch


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
        from core.data.synthetic import generate_items

        table = generate_items(cfg.synthetic, seed=0)
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
    needed = [c for c in columns if "{" + c + "}" in template]
    rows = _item_rows(table, key, raw_ids)
    found = np.flatnonzero(rows >= 0)
    texts: list[str] = list(raw_ids)  # items without a row keep their id
    missing = len(raw_ids) - len(found)
    done = 0
    for size, batch in _item_values(table, needed, rows[found]):
        for j in range(size):
            position = int(found[done + j])
            rid = raw_ids[position]
            fields = {c: _as_text(batch[c][j]) for c in needed}
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
                missing += 1
            else:
                texts[position] = " ".join(text.split())
        done += size
    return texts, missing
