"""core.data: frequency bins, the leave-one-out protocol, the loaders (local / hub folder / synthetic), item
texts and the fingerprinted cache (DESIGN §3)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.config import Columns, DatasetConfig, Filter, ItemTable
from core.data import prepare
from core.data.prepare import SeqData, build_sequences, data_fingerprint, frequency_bins, load_data, training_frequency
from core.errors import InputError

# ───────────────────────────── frequency bins ─────────────────────────────


def bins_of(freqs: list[int], n_bins: int) -> list[int]:
    """freqs of items 1..N → their bins (item 0 = padding is always bin 0)."""
    out = frequency_bins(np.array([0, *freqs], dtype=np.int64), n_bins)
    assert out[0] == 0
    return out[1:].tolist()


def test_bins_hold_equal_interaction_mass():
    # total 10, 2 bins → a bin closes at 5: item 1 alone fills bin 1
    assert bins_of([5, 3, 1, 1, 0], 2) == [1, 2, 2, 2, 2]
    # total 14, 3 bins → share 4.67: {1 (4), 2 (3)} = 7, {3 (3), 4 (2)} = 5, then the tail
    assert bins_of([4, 3, 3, 2, 1, 1], 3) == [1, 1, 2, 2, 3, 3]
    assert bins_of([1] * 6, 2) == [1, 1, 1, 2, 2, 2]


def test_bins_sort_by_frequency_not_by_id():
    assert bins_of([1, 1, 1, 5, 2], 2) == [2, 2, 2, 1, 2]


def test_bin_ties_are_broken_by_id():
    # items 1, 3, 4 tie at 2: after item 2 (4), the lowest id (1) completes bin 1
    assert bins_of([2, 4, 2, 2], 2) == [1, 1, 2, 2]
    assert bins_of([2, 2, 2, 2], 2) == [1, 1, 2, 2]


def test_zero_frequency_items_are_always_in_the_last_bin():
    # a heavy head leaves bins 2 and 3 to the rest; never-seen items land in bin n_bins whatever the mass
    assert bins_of([0, 10, 0, 1, 1], 3) == [3, 1, 3, 2, 2]
    assert bins_of([0, 3, 0], 4) == [4, 1, 4]


def test_bins_never_exceed_n_bins():
    b = bins_of(list(range(50, 0, -1)), 10)
    assert min(b) == 1 and max(b) == 10
    assert b == sorted(b)  # most popular first


# ───────────────────────────── sequences and the split ─────────────────────────────

# user, item, time, rating — rows in source order
ROWS = [
    ("u1", "10", 3, 5),
    ("u1", "2", 1, 4),
    ("u1", "3", 2, 1),  # ties with the next row on time: source order keeps 3 before 4
    ("u1", "4", 2, 5),
    ("u1", "5", 4, 5),
    ("u2", "2", 1, 5),
    ("u2", "3", 1, 5),  # ties with the row above
    ("u2", "10", 0, 5),
    ("u3", "7", 1, 5),  # u3 has only 2 interactions
    ("u3", "2", 2, 5),
    ("u2", "9", 5, 2),
]


def raw_table(rows=ROWS) -> dict[str, np.ndarray]:
    return {
        "user": np.array([r[0] for r in rows]).astype(str),
        "item": np.array([r[1] for r in rows]).astype(str),
        "time": np.array([r[2] for r in rows], dtype=np.float64),
        "rating": np.array([r[3] for r in rows], dtype=np.float64),
    }


def cfg_with(min_users: int = 3, min_rating: float | None = None, **kw) -> DatasetConfig:
    return DatasetConfig(preset="tiny", source="local", path="tiny.csv",
                         filter=Filter(min_user_interactions=min_users, min_rating=min_rating), **kw)


def as_data(items, offsets, raw_items, raw_users) -> SeqData:
    return SeqData(items, offsets, raw_items, raw_users, list(raw_items), "fp")


def user_seqs(items, offsets, raw_items) -> list[list[str]]:
    return [[raw_items[i - 1] for i in items[offsets[u]:offsets[u + 1]]] for u in range(len(offsets) - 1)]


def test_build_sequences_orders_by_time_with_stable_ties():
    items, offsets, raw_items, raw_users = build_sequences(raw_table(), cfg_with())
    assert raw_users == ["u1", "u2"]  # u3 (2 interactions) is filtered out
    assert raw_items == ["2", "3", "4", "5", "9", "10"]  # numeric ids in numeric order; item 7 left with u3
    assert user_seqs(items, offsets, raw_items) == [["2", "3", "4", "10", "5"], ["10", "2", "3", "9"]]
    assert items.tolist() == [1, 2, 3, 6, 4, 6, 1, 2, 5]
    assert offsets.tolist() == [0, 5, 9]


def test_leave_one_out_split_and_training_frequency():
    data = as_data(*build_sequences(raw_table(), cfg_with()))
    assert data.test_targets.tolist() == [4, 5]  # last items: "5", "9"
    assert data.valid_targets.tolist() == [6, 2]  # second-last: "10", "3"
    assert data.train_part(0).tolist() == [1, 2, 3]
    assert data.train_part(1).tolist() == [6, 1]
    # training part only: "5", "9" (test) and "3"/"10" as validation targets do not count there
    assert training_frequency(data).tolist() == [0, 2, 1, 1, 0, 0, 1]


def test_min_user_interactions_filter():
    items, offsets, raw_items, raw_users = build_sequences(raw_table(), cfg_with(min_users=5))
    assert raw_users == ["u1"]
    assert user_seqs(items, offsets, raw_items) == [["2", "3", "4", "10", "5"]]
    assert raw_items == ["2", "3", "4", "5", "10"]


def test_leave_one_out_needs_three_interactions_whatever_the_filter():
    _, _, _, raw_users = build_sequences(raw_table(), cfg_with(min_users=1))
    assert raw_users == ["u1", "u2"]  # u3's two interactions cannot give train + valid + test


def test_min_rating_filter_runs_before_the_user_filter():
    items, offsets, raw_items, raw_users = build_sequences(raw_table(), cfg_with(min_rating=4))
    assert raw_users == ["u1", "u2"]
    assert user_seqs(items, offsets, raw_items) == [["2", "4", "10", "5"], ["10", "2", "3"]]
    # with a threshold of 4, u2 keeps 3 rows: a filter of 4 users then drops it
    _, _, _, raw_users = build_sequences(raw_table(), cfg_with(min_users=4, min_rating=4))
    assert raw_users == ["u1"]


def test_error_nothing_left_after_rating_filter():
    with pytest.raises(InputError, match=r"dataset\.filter\.min_rating") as exc:
        build_sequences(raw_table(), cfg_with(min_rating=6))
    assert "tiny" in str(exc.value)


def test_error_min_rating_without_rating_column():
    raw = raw_table()
    del raw["rating"]
    with pytest.raises(InputError, match=r"dataset\.columns\.rating"):
        build_sequences(raw, cfg_with(min_rating=4))


def test_error_no_user_with_enough_interactions():
    with pytest.raises(InputError, match=r"dataset\.filter\.min_user_interactions") as exc:
        build_sequences(raw_table(), cfg_with(min_users=6))
    assert "has 5" in str(exc.value)  # the most active user


def test_error_empty_table():
    empty = {k: v[:0] for k, v in raw_table().items()}
    with pytest.raises(InputError, match="no rows"):
        build_sequences(empty, cfg_with())


# ───────────────────────────── loaders ─────────────────────────────

FRAME = pd.DataFrame({
    "user": ["a", "a", "a", "b", "b", "b", "b", "c", "c", "c"],
    "item": [1, 2, 3, 1, 4, 2, 3, 2, 3, 1],
    "ts": [1, 2, 3, 5, 4, 3, 3, 9, 8, 7],
    "stars": [5, 5, 5, 5, 5, 5, 1, 5, 5, 5],
})
EXPECTED = [["1", "2", "3"], ["2", "3", "4", "1"], ["1", "3", "2"]]


def write(frame: pd.DataFrame, path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)


def local_cfg(path, **kw) -> DatasetConfig:
    cols = kw.pop("columns", Columns(user="user", item="item", time="ts", rating="stars"))
    return DatasetConfig(source=kw.pop("source", "local"), path=str(path), columns=cols,
                         filter=kw.pop("filter", Filter(min_user_interactions=3)), **kw)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_local_files(tmp_path, fmt):
    path = tmp_path / f"ratings.{fmt}"
    write(FRAME, path, fmt)
    data = load_data(local_cfg(path), n_bins=2, log=lambda m: None)
    assert data.raw_user_ids == ["a", "b", "c"]
    assert user_seqs(data.items, data.offsets, data.raw_item_ids) == EXPECTED
    assert data.item_texts == data.raw_item_ids  # no item table: the id is the text
    assert data.n_bins == 2 and data.item_bin[0] == 0


def test_local_folder_of_files(tmp_path):
    write(FRAME.iloc[:5], tmp_path / "parts" / "a.csv", "csv")
    write(FRAME.iloc[5:], tmp_path / "parts" / "b.csv", "csv")
    data = load_data(local_cfg(tmp_path / "parts"), n_bins=2, log=lambda m: None)
    assert user_seqs(data.items, data.offsets, data.raw_item_ids) == EXPECTED


@pytest.mark.parametrize("batch", [3, 100_000])
def test_local_file_encoded_in_streaming_batches(tmp_path, monkeypatch, batch):
    """The Arrow-batched encoding gives the same sequences whether a batch holds 3 rows or the whole file."""
    from core.data import sources

    monkeypatch.setattr(sources, "ENCODE_BATCH", batch)
    write(FRAME, tmp_path / "ratings.parquet", "parquet")
    raw = sources.load_interactions(local_cfg(tmp_path / "ratings.parquet"), seed=0)
    assert raw["user"].dtype == np.int64 and raw["item"].dtype == np.int64  # codes, not strings
    assert sorted(raw["user_ids"]) == ["a", "b", "c"] and sorted(raw["item_ids"]) == ["1", "2", "3", "4"]
    assert [raw["item_ids"][c] for c in raw["item"]] == [str(i) for i in FRAME["item"]]  # source order kept
    assert raw["time"].tolist() == FRAME["ts"].astype(float).tolist()
    data = load_data(local_cfg(tmp_path / "ratings.parquet"), 2, use_cache=False, log=lambda m: None)
    assert user_seqs(data.items, data.offsets, data.raw_item_ids) == EXPECTED


def test_local_non_numeric_rating_names_the_column(tmp_path):
    write(FRAME.assign(stars=["good"] * len(FRAME)), tmp_path / "ratings.csv", "csv")
    with pytest.raises(InputError, match=r"'stars' \(dataset\.columns\.rating\) is not numeric"):
        load_data(local_cfg(tmp_path / "ratings.csv"), 2, log=lambda m: None)


def test_item_table_first_row_of_a_key_wins(tmp_path):
    write(FRAME, tmp_path / "ratings.csv", "csv")
    items = pd.DataFrame({"item_id": [2, 1, 2, 3], "title": ["Babe", "Heat", "Babe again", "Fargo"]})
    write(items, tmp_path / "items.parquet", "parquet")
    cfg = local_cfg(tmp_path / "ratings.csv",
                    items=ItemTable(path=str(tmp_path / "items.parquet"), key="item_id", text="{title}"))
    data = load_data(cfg, 2, log=lambda m: None)
    assert data.item_texts == ["Heat", "Babe", "Fargo", "4"] and data.missing_text == 1


def test_local_dates_as_time(tmp_path):
    frame = FRAME.assign(ts=pd.to_datetime(FRAME["ts"], unit="D").dt.strftime("%Y-%m-%d"))
    path = tmp_path / "dated.jsonl"
    write(frame, path, "jsonl")
    data = load_data(local_cfg(path), n_bins=2, log=lambda m: None)
    assert user_seqs(data.items, data.offsets, data.raw_item_ids) == EXPECTED


def test_local_rating_filter(tmp_path):
    path = tmp_path / "ratings.csv"
    write(FRAME, path, "csv")
    data = load_data(local_cfg(path, filter=Filter(min_user_interactions=3, min_rating=3)), 2, log=lambda m: None)
    assert user_seqs(data.items, data.offsets, data.raw_item_ids) == [["1", "2", "3"], ["2", "4", "1"], ["1", "3", "2"]]


def test_local_missing_column_lists_the_file_columns(tmp_path):
    path = tmp_path / "ratings.csv"
    write(FRAME.rename(columns={"item": "movie"}), path, "csv")
    with pytest.raises(InputError) as exc:
        load_data(local_cfg(path), 2, log=lambda m: None)
    msg = str(exc.value)
    assert "'item'" in msg and "dataset.columns.item" in msg
    assert "user, movie, ts, stars" in msg


def test_local_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(InputError, match="nope.csv") as exc:
        load_data(local_cfg(path), 2, log=lambda m: None)
    assert "dataset.path" in str(exc.value)


def test_local_unknown_format(tmp_path):
    path = tmp_path / "ratings.xlsx"
    path.write_text("x")
    with pytest.raises(InputError, match="xlsx"):
        load_data(local_cfg(path), 2, log=lambda m: None)


def hub_folder(root, frame: pd.DataFrame, fmt: str = "parquet"):
    """A folder laid out like a Hugging Face hub dataset repository."""
    write(frame, root / "data" / f"train-00000-of-00001.{fmt}", fmt)
    return root


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_hub_loader_on_a_hub_layout_folder(tmp_path, fmt):
    repo = hub_folder(tmp_path / "hub-repo", FRAME, fmt)
    data = load_data(local_cfg(repo, source="hub", split="train"), 2, log=lambda m: None)
    assert user_seqs(data.items, data.offsets, data.raw_item_ids) == EXPECTED


def test_hub_loader_error_names_the_dataset(tmp_path):
    with pytest.raises(InputError, match="no-such-dataset") as exc:
        load_data(local_cfg(tmp_path / "no-such-dataset", source="hub"), 2, log=lambda m: None)
    assert "source = \"local\"" in str(exc.value)


# ───────────────────────────── item texts ─────────────────────────────

ITEMS = pd.DataFrame({
    "item_id": [1, 2, 3, 9],
    "title": ["Heat", "Babe", None, "Unused"],
    "year": ["1995", "1995", None, "2000"],
})


def test_item_texts_from_an_item_table(tmp_path):
    write(FRAME, tmp_path / "ratings.csv", "csv")
    write(ITEMS, tmp_path / "items.jsonl", "jsonl")  # json keeps "1995" a string next to a null
    logged = []
    cfg = local_cfg(tmp_path / "ratings.csv",
                    items=ItemTable(path=str(tmp_path / "items.jsonl"), key="item_id", text="{title}  ({year})"))
    data = load_data(cfg, 2, log=logged.append)
    assert data.raw_item_ids == ["1", "2", "3", "4"]
    # item 3 has only empty fields and item 4 is not in the table: both count as missing and use their id
    assert data.item_texts == ["Heat (1995)", "Babe (1995)", "3", "4"]
    assert data.missing_text == 2
    assert data.stats()["items_without_text"] == 2
    assert any("2 of 4 items have no text" in m for m in logged)


def test_item_text_template_with_unknown_column(tmp_path):
    write(FRAME, tmp_path / "ratings.csv", "csv")
    write(ITEMS, tmp_path / "items.csv", "csv")
    cfg = local_cfg(tmp_path / "ratings.csv",
                    items=ItemTable(path=str(tmp_path / "items.csv"), key="item_id", text="{title} {genre}"))
    with pytest.raises(InputError, match="genre") as exc:
        load_data(cfg, 2, log=lambda m: None)
    assert "dataset.items.text" in str(exc.value) and "item_id, title, year" in str(exc.value)


def test_item_table_key_column_missing(tmp_path):
    write(FRAME, tmp_path / "ratings.csv", "csv")
    write(ITEMS, tmp_path / "items.csv", "csv")
    cfg = local_cfg(tmp_path / "ratings.csv", items=ItemTable(path=str(tmp_path / "items.csv"), key="asin"))
    with pytest.raises(InputError, match=r"dataset\.items\.key"):
        load_data(cfg, 2, log=lambda m: None)


def test_hub_item_table_from_a_hub_layout_folder(tmp_path):
    """source = "hub" resolves a local folder like a hub repo for the interactions, and must for items too."""
    repo = hub_folder(tmp_path / "reviews", FRAME)
    meta = hub_folder(tmp_path / "meta", ITEMS)
    cfg = local_cfg(repo, source="hub", items=ItemTable(path=str(meta), key="item_id", text="{title}"))
    data = load_data(cfg, 2, log=lambda m: None)
    assert data.item_texts == ["Heat", "Babe", "3", "4"]


def test_synthetic_item_texts_carry_topics(tiny_cfg):
    cfg = tiny_cfg()
    data = load_data(cfg.dataset, 10, log=lambda m: None)
    assert data.missing_text == 0
    assert len(data.item_texts) == data.n_items
    assert all(t and not t.startswith("i") for t in data.item_texts[:20])
    assert data.n_users == 200 and 0 < data.n_items <= 150
    # deterministic: the same config gives the same sequences
    again = load_data(cfg.dataset, 10, use_cache=False, log=lambda m: None)
    assert np.array_equal(again.items, data.items) and again.item_texts == data.item_texts


def test_stats_and_bin_table(tiny_cfg):
    data = load_data(tiny_cfg().dataset, 4, log=lambda m: None)
    stats = data.stats()
    assert stats["users"] == data.n_users and stats["items"] == data.n_items
    assert stats["interactions"] == len(data.items)
    assert [row["bin"] for row in stats["bins"]] == [1, 2, 3, 4]
    assert sum(row["items"] for row in stats["bins"]) == data.n_items
    assert sum(row["test_targets"] for row in stats["bins"]) == data.n_users
    assert sum(row["share"] for row in stats["bins"]) == pytest.approx(1.0)
    assert data.item_freq.sum() == len(data.items) - 2 * data.n_users


# ───────────────────────────── cache ─────────────────────────────


def test_second_load_hits_the_cache(tiny_cfg, tmp_cache, monkeypatch):
    cfg = tiny_cfg().dataset
    first = load_data(cfg, 10, log=lambda m: None)
    folder = tmp_cache / "data" / data_fingerprint(cfg)
    assert (folder / "meta.json").is_file() and first.fingerprint == folder.name

    def no_reload(*a, **k):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(prepare, "load_interactions", no_reload)
    second = load_data(cfg, 10, log=lambda m: None)
    assert np.array_equal(second.items, first.items) and np.array_equal(second.offsets, first.offsets)
    assert second.item_texts == first.item_texts and second.raw_item_ids == first.raw_item_ids
    assert np.array_equal(second.item_bin, first.item_bin)


def test_fingerprint_follows_what_the_data_depends_on(tiny_cfg):
    base = tiny_cfg().dataset
    fp = data_fingerprint(base)
    assert data_fingerprint(tiny_cfg().dataset) == fp
    assert data_fingerprint(tiny_cfg("dataset.filter.min_user_interactions=6").dataset) != fp
    assert data_fingerprint(tiny_cfg("dataset.filter.min_rating=1").dataset) != fp
    assert data_fingerprint(tiny_cfg("dataset.synthetic.n_users=201").dataset) != fp
    assert data_fingerprint(tiny_cfg('dataset.items.text="{title} {topic}"').dataset) != fp
    # the model and training settings are not part of it
    assert data_fingerprint(tiny_cfg("backbone.hidden_size=32", "stages.pretrain.lr=0.1").dataset) == fp


def test_changed_local_file_changes_the_fingerprint(tmp_path):
    path = tmp_path / "ratings.csv"
    write(FRAME, path, "csv")
    cfg = local_cfg(path)
    fp = data_fingerprint(cfg)
    write(FRAME.iloc[:-1], path, "csv")
    assert data_fingerprint(cfg) != fp


def test_cache_with_a_wrong_fingerprint_is_rebuilt(tiny_cfg, tmp_cache):
    cfg = tiny_cfg().dataset
    first = load_data(cfg, 10, log=lambda m: None)
    meta_path = tmp_cache / "data" / first.fingerprint / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["fingerprint"] = "somethingelse"
    meta["item_texts"] = meta["item_texts"][:-1]
    meta_path.write_text(json.dumps(meta))
    logged = []
    again = load_data(cfg, 10, log=logged.append)
    assert any("does not match" in m for m in logged)
    assert again.item_texts == first.item_texts
    assert json.loads(meta_path.read_text())["fingerprint"] == first.fingerprint  # rewritten


def test_a_dataset_keeps_its_fingerprint_across_versions():
    """Caches and `padtui resume` key on the fingerprint: an option added later, left at its default, must not
    change it (these are the fingerprints every earlier padtui version computed)."""
    from core.config import load_run_config
    from core.data.prepare import data_fingerprint

    assert data_fingerprint(load_run_config("ml100k-sasrec-smollm2").dataset) == "125be10a888379e9"
    old_demo = ["dataset.synthetic.series=0", "dataset.synthetic.n_items=600"]  # the synthetic preset before 3,000
    assert data_fingerprint(load_run_config("demo", old_demo).dataset) == "03034c9894bd8211"
    changed = load_run_config("demo", old_demo + ["dataset.filter.drop_bad_rows=true"]).dataset
    assert data_fingerprint(changed) != "03034c9894bd8211"


def test_series_names_tie_consecutive_episodes_in_the_titles():
    """dataset.synthetic.series: items next to each other inside a topic (what a "next episode" step walks to)
    share a series name; the titles are otherwise the ones without series, and the interactions do not change."""
    from core.config import Synthetic
    from core.data.synthetic import Catalogue, generate_interactions, generate_items

    plain_cfg, series_cfg = Synthetic(n_users=50, n_items=120, n_topics=4), Synthetic(n_users=50, n_items=120,
                                                                                      n_topics=4, series=3)
    plain, series = generate_items(plain_cfg, seed=5), generate_items(series_cfg, seed=5)
    cat = Catalogue(series_cfg, 5)
    name = [t.split(" ", 1)[0] for t in series["title"]]
    for i in range(120):
        assert series["title"][i].endswith(plain["title"][i])
        for j in range(120):
            same = cat.item_topic[i] == cat.item_topic[j] and cat.position[i] // 3 == cat.position[j] // 3
            if same:
                assert name[i] == name[j]
    episodes = {int(t.split(" ", 2)[1].rstrip(":")) for t in series["title"]}
    assert episodes == {1, 2, 3}
    a, b = generate_interactions(plain_cfg, seed=5), generate_interactions(series_cfg, seed=5)
    assert (a["item"] == b["item"]).all()
