"""Interactions → filtered → chronological per-user sequences → leave-one-out → item frequency bins.

The protocol is DESIGN §3 and is recorded in every run's manifest:
- optional rating threshold, then users with ≥ `min_user_interactions`;
- each user's interactions sorted by time, ties keep source order (stable);
- last item = test target, second-last = validation target, the rest = training;
- item frequency counts the training part only; bins hold equal shares of training interactions.
Processed sequences are cached under a fingerprint of everything they depend on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config import DatasetConfig
from core.data.sources import load_interactions, load_item_texts
from core.errors import InputError
from core.atomic import atomic_write_json
from core.runs import cache_dir

DATA_FORMAT = 3  # bump when the processed layout or protocol changes: old caches are then rebuilt


@dataclass
class SeqData:
    """Per-user chronological sequences in CSR form; item ids 1..n_items (0 = padding)."""

    items: np.ndarray  # int64 [total interactions], users' sequences back to back
    offsets: np.ndarray  # int64 [n_users + 1]
    raw_item_ids: list[str]  # raw id of item k is raw_item_ids[k - 1]
    raw_user_ids: list[str]
    item_texts: list[str]  # text of item k is item_texts[k - 1]
    fingerprint: str
    missing_text: int = 0
    item_freq: np.ndarray = field(default=None)  # int64 [n_items + 1], training part only
    item_bin: np.ndarray = field(default=None)  # int64 [n_items + 1], 0 = padding, 1..n_bins
    n_bins: int = 0

    @property
    def n_items(self) -> int:
        return len(self.raw_item_ids)

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def train_part(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1] - 2]

    @property
    def valid_targets(self) -> np.ndarray:
        return self.items[self.offsets[1:] - 2]

    @property
    def test_targets(self) -> np.ndarray:
        return self.items[self.offsets[1:] - 1]

    @property
    def item_map_hash(self) -> str:
        digest = hashlib.sha256("\n".join(self.raw_item_ids).encode()).hexdigest()
        return digest[:16]

    def with_bins(self, n_bins: int) -> "SeqData":
        self.item_freq = training_frequency(self)
        self.item_bin = frequency_bins(self.item_freq, n_bins)
        self.n_bins = n_bins
        return self

    def stats(self) -> dict:
        lengths = np.diff(self.offsets)
        n = int(lengths.sum())
        pairs = np.repeat(np.arange(self.n_users, dtype=np.int64), lengths) * (self.n_items + 1) + self.items
        distinct = len(np.unique(pairs))
        out = {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "repeated_pairs": n - distinct,  # a user's item seen again: kept, unhittable when history is masked
            "sparsity": 1.0 - distinct / max(1, self.n_users * self.n_items),
            "seq_len": {
                "min": int(lengths.min()),
                "median": float(np.median(lengths)),
                "mean": float(lengths.mean()),
                "max": int(lengths.max()),
            },
            "items_without_text": self.missing_text,
        }
        if self.n_bins:
            out["bins"] = bin_table(self)
        return out


def training_frequency(data: SeqData) -> np.ndarray:
    lengths = np.diff(data.offsets)
    keep = np.ones(len(data.items), dtype=bool)
    keep[data.offsets[1:] - 1] = False
    keep[data.offsets[1:] - 2] = False
    assert (lengths >= 3).all()
    return np.bincount(data.items[keep], minlength=data.n_items + 1).astype(np.int64)


def frequency_bins(freq: np.ndarray, n_bins: int) -> np.ndarray:
    """Bins of equal training-interaction mass: items sorted by (−frequency, id), a bin closes as soon as it
    holds total/n_bins interactions; bin 1 = most popular, bin n_bins = the tail incl. never-seen items."""
    n_items = len(freq) - 1
    ids = np.arange(1, n_items + 1)
    order = ids[np.lexsort((ids, -freq[1:]))]
    share = freq[1:].sum() / n_bins
    bins = np.zeros(n_items + 1, dtype=np.int64)
    current, mass = 1, 0
    for item in order:
        if freq[item] == 0:
            bins[item] = n_bins
            continue
        bins[item] = current
        mass += freq[item]
        if mass >= share and current < n_bins:
            current, mass = current + 1, 0
    return bins


def bin_table(data: SeqData) -> list[dict]:
    rows = []
    total = max(1, int(data.item_freq.sum()))
    for b in range(1, data.n_bins + 1):
        members = np.flatnonzero(data.item_bin == b)
        f = data.item_freq[members]
        rows.append({
            "bin": b,
            "items": int(len(members)),
            "share": float(f.sum() / total),
            "min_freq": int(f.min()) if len(f) else 0,
            "max_freq": int(f.max()) if len(f) else 0,
            "test_targets": int(np.isin(data.test_targets, members).sum()),
        })
    return rows


def _natural_key(raw: str):
    return (0, int(raw), "") if raw.isdigit() else (1, 0, raw)


def _codes(raw: dict, role: str) -> tuple[np.ndarray, list[str]]:
    """(int64 codes, raw ids as strings) of the `user` or `item` column; raw id arrays are encoded here."""
    if f"{role}_ids" in raw:
        return np.asarray(raw[role], dtype=np.int64), raw[f"{role}_ids"]
    vocab, codes = np.unique(np.asarray(raw[role]).astype(str), return_inverse=True)
    return codes.astype(np.int64), vocab.tolist()


def build_sequences(raw: dict, cfg: DatasetConfig) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Filter, map ids, order each user's interactions chronologically (stable).

    `raw` is what `load_interactions` returns (user / item codes into user_ids / item_ids) or plain raw id
    arrays. Users come out in the order of their raw ids (as strings), items in natural order (numeric ids by
    value), so the ids do not depend on the order of the source rows. Everything here is integer array work."""
    what = f"dataset '{cfg.preset or cfg.path}'"
    n0 = len(raw["user"])
    if n0 == 0:
        raise InputError(f"{what}: the data has no rows. Check dataset.path / split.")
    user, user_ids = _codes(raw, "user")
    item, item_ids = _codes(raw, "item")
    keep = np.ones(n0, dtype=bool)
    bad = raw.get("bad")
    if bad is not None and bad.any():
        rows = np.flatnonzero(bad)
        if not cfg.filter.drop_bad_rows:
            shown = ", ".join(str(r + 1) for r in rows[:8]) + (", …" if len(rows) > 8 else "")
            raise InputError(
                f"{what}: {len(rows):,} row(s) have a missing or blank user / item id or a missing / non-finite "
                f"time: data rows {shown} (row 1 = the first row after a header). Fix them in the file, or set "
                f"dataset.filter.drop_bad_rows = true to drop them (the count is logged).")
        keep &= ~bad
        raw["dropped_rows"] = len(rows)
    if cfg.filter.min_rating is not None:
        if "rating" not in raw:
            raise InputError(f"{what}: dataset.filter.min_rating is set but dataset.columns.rating is empty. Map the rating column.")
        keep &= raw["rating"] >= cfg.filter.min_rating
        if not keep.any():
            raise InputError(
                f"{what}: nothing left after dataset.filter.min_rating = {cfg.filter.min_rating} "
                f"(ratings range {raw['rating'].min()}..{raw['rating'].max()}). Lower the threshold."
            )
    counts = np.bincount(user[keep], minlength=len(user_ids))
    min_len = max(3, cfg.filter.min_user_interactions)
    good_user = counts >= min_len
    if not good_user.any():
        raise InputError(
            f"{what}: no user has ≥ {min_len} interactions after filtering (dataset.filter.min_user_interactions; "
            f"the most active user has {counts.max()}). Lower the filter."
        )
    rows = np.flatnonzero(keep & good_user[user])
    kept_users = np.flatnonzero(good_user)
    kept_users = kept_users[np.argsort(np.asarray([user_ids[u] for u in kept_users], dtype=str), kind="stable")]
    new_user = np.full(len(user_ids), -1, dtype=np.int64)
    new_user[kept_users] = np.arange(len(kept_users))
    used = np.zeros(len(item_ids), dtype=bool)
    used[item[rows]] = True
    kept_items = sorted(np.flatnonzero(used).tolist(), key=lambda i: _natural_key(item_ids[i]))
    new_item = np.zeros(len(item_ids), dtype=np.int64)
    new_item[kept_items] = np.arange(1, len(kept_items) + 1)
    user_codes = new_user[user[rows]]
    order = np.lexsort((rows, raw["time"][rows], user_codes))  # user, then time, then source order (stable ties)
    items = new_item[item[rows]][order]
    offsets = np.zeros(len(kept_users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_codes, minlength=len(kept_users)), out=offsets[1:])
    return items, offsets, [item_ids[i] for i in kept_items], [user_ids[u] for u in kept_users]


def data_fingerprint(cfg: DatasetConfig) -> str:
    spec = {
        "format": DATA_FORMAT,
        "source": cfg.source, "path": cfg.path, "name": cfg.name, "split": cfg.split, "revision": cfg.revision,
        "columns": vars(cfg.columns), "items": vars(cfg.items),
        # options added later count only when set, so a dataset keeps its fingerprint (caches, resume) across
        # padtui versions
        "filter": {k: v for k, v in vars(cfg.filter).items() if not (k == "drop_bad_rows" and not v)},
    }
    if cfg.source == "synthetic":
        spec["synthetic"] = {k: v for k, v in vars(cfg.synthetic).items() if not (k == "series" and not v)}
    if cfg.source == "local":
        for key, p in (("file", cfg.path), ("item_file", cfg.items.path)):
            if p and os.path.exists(p):
                st = os.stat(p)
                spec[key] = [os.path.abspath(p), st.st_size, int(st.st_mtime)]
    blob = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_data(cfg: DatasetConfig, n_bins: int, use_cache: bool = True, log=print) -> SeqData:
    """The processed dataset, from the fingerprinted cache when present."""
    fp = data_fingerprint(cfg)
    folder = cache_dir() / "data" / fp
    if use_cache and (folder / "meta.json").is_file():
        try:
            meta = json.loads((folder / "meta.json").read_text())
            arrays = np.load(folder / "arrays.npz")
            data = SeqData(
                items=arrays["items"], offsets=arrays["offsets"], raw_item_ids=meta["raw_item_ids"],
                raw_user_ids=meta["raw_user_ids"], item_texts=meta["item_texts"], fingerprint=fp,
                missing_text=meta["missing_text"],
            )
            if meta.get("fingerprint") == fp and len(data.item_texts) == data.n_items:
                return data.with_bins(n_bins)
            log(f"data cache {folder} does not match its fingerprint: rebuilding")
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            log(f"data cache {folder} is unreadable: rebuilding")
    raw = load_interactions(cfg, seed=0)
    items, offsets, raw_items, raw_users = build_sequences(raw, cfg)
    if raw.get("dropped_rows"):
        log(f"warning: dropped {raw['dropped_rows']:,} rows with a missing id or time (dataset.filter.drop_bad_rows)")
    texts, missing = load_item_texts(cfg, raw_items)
    if missing:
        log(f"warning: {missing} of {len(raw_items)} items have no text in the item table; their id is used as text")
    data = SeqData(items, offsets, raw_items, raw_users, texts, fp, missing)
    if use_cache:
        _write_cache(folder, data)
    return data.with_bins(n_bins)


def _write_cache(folder: Path, data: SeqData) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        np.savez(tmp / "arrays.npz", items=data.items, offsets=data.offsets)
        atomic_write_json(tmp / "meta.json", {
            "fingerprint": data.fingerprint, "raw_item_ids": data.raw_item_ids, "raw_user_ids": data.raw_user_ids,
            "item_texts": data.item_texts, "missing_text": data.missing_text,
        })
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # a cache is an optimisation: never fail the run for it
