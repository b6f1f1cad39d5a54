"""Experiment trackers (`train.log_with`): the run's numbers where researchers already look — TensorBoard,
wandb (offline unless WANDB_MODE says otherwise), MLflow, or anything else Accelerate supports — next to the
run folder, never instead of it: events.jsonl stays the record that resume, `padtui show` and the TUI read.

Each event the run emits becomes scalars (`scalars`):
    step        {stage}/train/{loss}, {stage}/train/lr            at the stage's global step
    epoch       {stage}/epoch/{loss}                              at the epoch
    eval        {stage}/{split}/{group}/{metric}, {stage}/gate/bin{b}/{expert}   at the epoch
    stage_end   {stage}/best/{split}/{group}/{metric}, {stage}/gate/bin{b}/{expert}  at the best epoch
Local trackers write under `<run>/trackers/`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.errors import InputError

PIP_NAMES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet_ml",
             "aim": "aim", "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab", "trackio": "trackio"}


def check(names: list[str]) -> None:
    """Every name is a tracker Accelerate knows and its package is installed; else a message that says how."""
    if not names:
        return
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    known = [t.value for t in LoggerType if t.value != "all"]
    available = {str(getattr(t, "value", t)) for t in get_available_trackers()}
    for name in names:
        if name not in known:
            raise InputError(f"train.log_with: '{name}' is not a tracker Accelerate supports. Choose from "
                             f"{', '.join(sorted(known))}.")
        if name not in available:
            raise InputError(f"train.log_with: '{name}' is not installed here. Install it "
                             f"(`pip install {PIP_NAMES.get(name, name)}`) or remove it from train.log_with.")


def prepare(names: list[str], folder: Path) -> dict[str, Any]:
    """Accelerator(...) arguments for the trackers, with offline defaults for the hosted ones."""
    if not names:
        return {}
    check(names)
    folder.mkdir(parents=True, exist_ok=True)
    if "wandb" in names:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(folder))
    if "mlflow" in names:
        os.environ.setdefault("MLFLOW_TRACKING_URI", (folder / "mlruns").resolve().as_uri())
    return {"log_with": list(names), "project_dir": str(folder)}


def flat_config(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """The resolved config as tracker hyper-parameters: dotted keys, lists and tables as text."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def _metrics(prefix: str, metrics: dict | None) -> dict[str, float]:
    return {f"{prefix}/{group}/{metric}": float(v)
            for group, values in (metrics or {}).items() if isinstance(values, dict)
            for metric, v in values.items() if metric != "n" and isinstance(v, (int, float))}


def _gate(stage: str, gate: dict | None) -> dict[str, float]:
    return {f"{stage}/gate/bin{b}/{expert}": float(w) for b, row in (gate or {}).items() for expert, w in row.items()}


def scalars(kind: str, stage: str, data: dict) -> tuple[dict[str, float], int] | None:
    """(scalars, step) for one event, or None when the event carries no numbers to track."""
    if not stage:
        return None
    if kind == "step" and "losses" in data and "global_step" in data:
        out = {f"{stage}/train/{k}": float(v) for k, v in data["losses"].items()}
        if "lr" in data:
            out[f"{stage}/train/lr"] = float(data["lr"])
        return out, int(data["global_step"])
    if kind == "epoch" and "losses" in data:
        return {f"{stage}/epoch/{k}": float(v) for k, v in data["losses"].items()}, int(data["epoch"])
    if kind == "eval" and "metrics" in data:
        out = _metrics(f"{stage}/{data.get('split', 'valid')}", data["metrics"]) | _gate(stage, data.get("gate"))
        return out, int(data.get("epoch", 0))
    if kind == "stage_end" and data.get("best_epoch") is not None:
        out = _metrics(f"{stage}/best/valid", data.get("valid")) | _metrics(f"{stage}/best/test", data.get("test"))
        return out | _gate(stage, data.get("gate")), int(data["best_epoch"])
    return None
