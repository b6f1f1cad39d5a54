"""Typed run configuration, resolved from TOML presets in layers.

run preset  ─►  dataset / backbone / llm presets (a name, or an inline table, optionally `preset = "NAME"`
                plus overrides)  ─►  `--set KEY=VALUE`  ─►  RunConfig (validated).

Unknown keys and wrong types are `InputError`s that name the file and the dotted key. This module is pure
Python (no torch) so the TUI can read and validate presets.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import InputError

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
PRESET_KINDS = ("runs", "datasets", "backbones", "llms", "methods")
STAGES = ("pretrain", "align", "disentangle")


# ───────────────────────────── schema ─────────────────────────────


@dataclass
class Columns:
    user: str = "user_id"
    item: str = "item_id"
    time: str = "timestamp"
    rating: str = ""  # empty: no rating column


@dataclass
class ItemTable:
    path: str = ""  # empty: no item table (items are described by their id)
    name: str = ""
    split: str = "train"
    revision: str = ""
    key: str = "item_id"
    text: str = "{item_id}"  # template over the item table's columns


@dataclass
class Filter:
    min_user_interactions: int = 5
    min_rating: float | None = None
    drop_bad_rows: bool = False  # rows with a missing id or time: an error naming them, or dropped with a count


@dataclass
class Synthetic:
    n_users: int = 2000
    n_items: int = 1500
    n_topics: int = 12
    mean_length: float = 20.0
    tail_exponent: float = 1.1  # Zipf exponent of item popularity inside a topic
    drift: float = 0.15  # chance that a user's next item moves to a neighbouring topic
    # episodes per series: consecutive items of a topic (what "next episode" steps walk) share a series name in
    # their titles, so the text tells where a rare item's sequence goes next; 0 = no series names
    series: int = 0


@dataclass
class DatasetConfig:
    preset: str = ""
    description: str = ""
    source: Literal["hub", "local", "asset", "synthetic"] = "synthetic"
    path: str = ""
    name: str = ""  # hub config name
    split: str = "train"
    revision: str = ""
    columns: Columns = field(default_factory=Columns)
    items: ItemTable = field(default_factory=ItemTable)
    filter: Filter = field(default_factory=Filter)
    synthetic: Synthetic = field(default_factory=Synthetic)


@dataclass
class BackboneConfig:
    preset: str = ""
    description: str = ""
    kind: Literal["sasrec", "gru4rec", "bert4rec"] = "sasrec"
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    max_len: int = 50
    mask_prob: float = 0.2  # BERT4Rec cloze masking


@dataclass
class LLMConfig:
    preset: str = ""
    description: str = ""
    model: str = "asset:smollm2"
    gguf_file: str = ""
    revision: str = ""
    pooling: Literal["mean", "last", "cls", "prompt_last"] = "mean"
    prompt: str = 'This item: "{text}" means in one word:"'
    max_length: int = 64
    batch_size: int = 64
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    normalize: bool = False
    # a decoder read as an encoder (LLM2Vec): every token attends to every other, not only to the ones before it
    bidirectional: bool = False
    # PEFT (LoRA) adapters applied in order on top of `model` and merged into its weights: hub ids or folders
    adapters: list[str] = field(default_factory=list)
    text_format: str = "{text}"  # how each item text is wrapped before tokenising (prompt_last uses `prompt`)
    params: str = ""  # human-readable size, shown in pickers


@dataclass
class StageConfig:
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    loss: Literal["bce", "ce", "sampled_softmax"] = "ce"
    n_negatives: int = 256  # sampled_softmax: shared negatives per batch
    windows: Literal["last", "sliding"] = "sliding"
    patience: int = 5
    grad_accum: int = 1
    max_grad_norm: float = 5.0


@dataclass
class PretrainConfig(StageConfig):
    pass


@dataclass
class AlignConfig(StageConfig):
    epochs: int = 15
    lr: float = 5e-4
    mmd_weight: float = 0.2
    kernel: Literal["gaussian", "laplacian", "linear", "cosine"] = "gaussian"
    objective: Literal["mmd", "infonce"] = "mmd"
    infonce_temperature: float = 0.1
    freeze_id_copy: bool = False
    # false: stage 2's loss is the alignment term alone (ablation: MMD without the recommendation anchor)
    rec_anchor: bool = True
    # fusion W at the start: "identity" = [I, ε] (the aligned expert starts as a copy of the ID expert);
    # "xavier" = Xavier-normal, zero bias (the authors' code)
    fusion_init: Literal["identity", "xavier"] = "identity"
    adapter_layers: int = 1
    adapter_dropout: float = 0.2
    mmd_max_rows: int = 1024


@dataclass
class DisentangleConfig(StageConfig):
    epochs: int = 15
    lr: float = 1e-4
    gate_lr: float = 1e-2  # the gate's few logits need a larger step than the experts to move in a few epochs
    n_bins: int = 10  # also defines the evaluation's frequency bins (cold = last bin)
    frequency_aware: bool = True
    gate_init_aligned: float = -4.0
    # the kNN expert's gate logit in every bin at the start: off (σ(−4) ≈ 0.02) by default, since a gate trained
    # on the training loss never turns it on (the ID expert memorised those items); a held-out re-fit may
    gate_init_knn: float = -4.0
    # "id", "aligned", "text" (the paper's three); "knn": padtui's parameter-free text-kNN expert
    # (core.models.text_knn), the last `knn_window` items' mean LLM vector against each item's
    # (the default, chosen in select mode: method padtui-guard; DESIGN §3 = method design-stage3)
    experts: list[str] = field(default_factory=lambda: ["id", "aligned", "text", "knn"])
    knn_window: int = 3
    # how the experts' scores are mixed: "scores" = DESIGN §3 (Σ_k w_k(bin) · s_k); "logprob" (padtui's own):
    # each expert's scores made log-probabilities over the catalogue first (core.models.scorer), so a per-bin
    # weight cannot turn an expert's arbitrary per-user score offset into a per-user, per-bin shift
    mix: Literal["scores", "logprob"] = "logprob"
    # experts kept exactly as stages 1-2 left them (e.g. ["id", "aligned"]): stage 3 trains only the others and
    # the gate, so a held-out gate stacks the earlier stages' models instead of re-training them
    freeze: list[str] = field(default_factory=list)
    # weight of the experts' own L_rec (their mean) next to the mixed one; 0 = DESIGN: the mixed loss only
    expert_loss: float = 0.0
    # "train" = DESIGN: the gate learns with the experts on the training loss; "heldout": after training, the
    # gate alone (experts fixed) is re-fitted on the fit split (eval.fit_share of the validation users, never
    # the users that select models or the test). A 2-fold cross-validation on that split then takes the largest
    # step from the trained gate toward the re-fit (0, 0.1, ..., 1) whose held-out NDCG@10 stays above
    # (1 - gate_fit_tolerance) x the trained gate's; step 0 keeps the trained gate. The SR baseline gets the same
    # kind of fit and the same check ("calibrated SR"). "heldout" is padtui's own (the paper trains the gate).
    gate_fit: Literal["train", "heldout"] = "heldout"
    gate_fit_check: bool = True  # false: keep the whole re-fit without the 2-fold check
    # the share of held-out NDCG@10 a step toward the re-fit may cost (0: it must rank better)
    gate_fit_tolerance: float = 0.01
    # what the check protects: "trained" = the trained gate's held-out NDCG@10 (within the tolerance); "sr"
    # (padtui's own) = stage 1's: a step is kept when, paired over the same fit users, it ranks at least as well
    # as stage 1 with one-sided 95 % confidence (the tolerance is not used), so what stage 3 gained over stage 1
    # may be spent on the tail, but only what the fit split can vouch for; "stage1" (padtui's own) = "sr", and
    # also: a step (the trained gate, step 0, included) must keep the cold bin's fit users at least at stage 1's
    # mean, and when no step passes, stage 3 falls back to stage 1 (the ID expert gets stage 1's weights back
    # and the whole gate), so stage 3 never ships a change the fit split says hurts the tail
    gate_fit_floor: Literal["trained", "sr", "stage1"] = "stage1"
    gate_fit_steps: int = 300
    gate_fit_users: int = 0  # at most this many fit-split users (a fixed draw) in the held-out fit; 0 = all
    adapter_layers: int = 1
    adapter_dropout: float = 0.2


@dataclass
class Stages:
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    disentangle: DisentangleConfig = field(default_factory=DisentangleConfig)


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    mask_history: bool = True
    select_metric: str = "NDCG@10"
    batch_size: int = 512
    item_chunk: int = 65536  # items scored at once; bounds memory on huge catalogues
    # share of the users whose validation item forms the *fit* split (what held-out fitting steps such as
    # stages.disentangle.gate_fit = "heldout" learn on); the other users' validation items select models and
    # give the reported validation numbers. Fixed by user id, the same for every run of a dataset.
    fit_share: float = 0.5


@dataclass
class TrainConfig:
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    checkpoint_every_steps: int = 0  # 0: only at the end of each epoch
    log_every_steps: int = 20
    auto_batch: bool = False  # on GPU OOM: halve the batch size and retry once
    num_workers: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    num_processes: int = 1  # > 1: detached workers start through `accelerate launch`
    # Accelerate trackers fed with the run's losses, metrics and gate weights (core/trackers.py), e.g.
    # ["tensorboard"]; local ones write under <run>/trackers/, wandb runs offline unless WANDB_MODE says otherwise
    log_with: list[str] = field(default_factory=list)


@dataclass
class RunConfig:
    preset: str = ""
    description: str = ""
    method: str = ""  # a presets/methods/NAME.toml recipe under the run preset's own keys ("" = the defaults)
    seed: int = 42
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    stages: Stages = field(default_factory=Stages)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTION_TYPES = {"datasets": DatasetConfig, "backbones": BackboneConfig, "llms": LLMConfig, "runs": RunConfig}


# ───────────────────────────── typed construction ─────────────────────────────


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "none")


def _coerce(value: Any, tp: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise InputError(f"{where}: key '{key}' = {value!r} is not one of {_type_name(tp)}. Fix the value.")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where, key)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise InputError(f"{where}: key '{key}' must be a list of {_type_name(inner)}, got {value!r}.")
        return [_coerce(v, inner, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(f"{where}: key '{key}' must be a table, got {value!r}.")
        return build(tp, value, where, key)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise InputError(f"{where}: key '{key}' must be true or false, got {value!r}.")
    if tp in (int, float) and isinstance(value, bool):
        raise InputError(f"{where}: key '{key}' must be a number, got {value!r}.")
    if not isinstance(value, tp):
        raise InputError(
            f"{where}: key '{key}' must be {_type_name(tp)}, got {type(value).__name__} {value!r}. Fix the value."
        )
    return value


def build(cls: type, data: dict, where: str, prefix: str = "") -> Any:
    """Build dataclass `cls` from a dict; unknown keys and wrong types name `where` and the dotted key."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in known:
            close = [k for k in known if k.startswith(key[:3])]
            hint = f" Did you mean {', '.join(sorted(close))}?" if close else f" Known keys: {', '.join(sorted(known))}."
            raise InputError(f"{where}: unknown key '{dotted}'.{hint}")
        kwargs[key] = _coerce(value, hints[key], where, dotted)
    return cls(**kwargs)


# ───────────────────────────── presets ─────────────────────────────


def user_presets_dir() -> Path:
    """Where the user's own presets live: $PADTUI_PRESETS, else ~/.config/padtui/presets."""
    base = os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config"))
    return Path(os.environ.get("PADTUI_PRESETS") or os.path.join(base, "padtui", "presets"))


def preset_dirs() -> list[Path]:
    """Bundled presets, then the user's own folder, which wins on a name clash."""
    return [PRESETS_DIR, user_presets_dir()]


def list_presets(kind: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for base in preset_dirs():
        for path in sorted((base / kind).glob("*.toml")):
            found[path.stem] = path
    return found


def read_toml(path: Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found. Check the path.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}).") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: malformed TOML: {exc}. Fix the file at that line.") from None


def preset_path(kind: str, name: str) -> Path:
    presets = list_presets(kind)
    if name not in presets:
        import difflib

        close = difflib.get_close_matches(name, list(presets), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]}?" if close else ""
        known = ", ".join(presets) or "none"
        raise InputError(
            f"unknown {kind[:-1]} preset '{name}'.{hint} Known: {known}. "
            f"Use `padtui presets list` or give a path to a .toml file."
        )
    return presets[name]


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_part(kind: str, value: Any, where: str, key: str) -> dict:
    """A run preset's dataset / backbone / llm: a preset name, or an inline table (with optional `preset`)."""
    if isinstance(value, str):
        path = preset_path(kind, value)
        data = read_toml(path)
        cls = SECTION_TYPES[kind]
        build(cls, data, str(path))  # validate the part file on its own, so errors name it
        return {**data, "preset": value}
    if isinstance(value, dict):
        base: dict = {}
        if "preset" in value:
            base = _resolve_part(kind, value["preset"], where, f"{key}.preset")
        return _deep_merge(base, value)
    raise InputError(f"{where}: key '{key}' must be a preset name or a table, got {value!r}.")


def parse_set(assignment: str) -> tuple[str, Any]:
    """`KEY=VALUE` with VALUE read as a TOML value (numbers, booleans, lists) or else as a string."""
    if "=" not in assignment:
        raise InputError(f"--set '{assignment}': expected KEY=VALUE, e.g. --set stages.pretrain.epochs=5.")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _apply_set(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        if part in ("dataset", "backbone", "llm") and node is data and isinstance(node.get(part), str):
            node[part] = {"preset": node[part]}
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f"--set {key}: '{part}' is not a table.")
    node[parts[-1]] = value


def load_run_config(preset_or_file: str, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Resolve a run preset name or a .toml file, apply `--set` overrides, validate."""
    if preset_or_file.endswith(".toml") or os.sep in preset_or_file:
        path = Path(preset_or_file)
        name = path.stem
    else:
        path = preset_path("runs", preset_or_file)
        name = preset_or_file
    return resolve_with_sets(read_toml(path), overrides, str(path), name)


def resolve_with_sets(data: dict, overrides: list[str] | tuple[str, ...], where: str, name: str = "") -> RunConfig:
    """Apply `--set KEY=VALUE` overrides to a run's raw TOML data, then resolve and validate it."""
    for assignment in overrides:
        key, value = parse_set(assignment)
        _apply_set(data, key, value)
    return resolve(data, f"{where} (with --set {' '.join(overrides)})" if overrides else where, name)


def _method_layer(name: Any, where: str) -> dict:
    """A method preset: a stage recipe (`[stages.*]` tables) that sits under the run preset's own keys, so
    `--set method=pad-official` turns any run preset into the authors' recipe."""
    if not isinstance(name, str):
        raise InputError(f"{where}: key 'method' must be a method preset name, got {name!r}.")
    if not name:
        return {}
    path = preset_path("methods", name)
    data = read_toml(path)
    extra = sorted(set(data) - {"description", "stages"})
    if extra:
        raise InputError(f"{path}: a method preset holds only 'description' and [stages.*] tables; "
                         f"move {', '.join(repr(k) for k in extra)} to a run preset.")
    build(RunConfig, {"stages": data.get("stages", {})}, str(path))  # errors name the method file
    return {"stages": data.get("stages", {})}


def resolve(data: dict, where: str, name: str = "") -> RunConfig:
    data = copy.deepcopy(data)
    data = _deep_merge(_method_layer(data.get("method", ""), where), data)
    defaults = {"dataset": "synthetic", "backbone": "sasrec", "llm": "smollm2-135m"}
    for key, kind in (("dataset", "datasets"), ("backbone", "backbones"), ("llm", "llms")):
        data[key] = _resolve_part(kind, data.get(key, defaults[key]), where, key)
    data.setdefault("preset", name)
    cfg: RunConfig = build(RunConfig, data, where)
    validate(cfg, where)
    return cfg


# The range of every numeric key: (low, high, low inclusive, high inclusive); None = unbounded. `*` matches one
# dotted part (any stage). Checked before a run folder exists; a numeric key with no range here is a bug that
# tests/test_config.py catches.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "seed": (0, 2**32 - 1, True, True),
    "dataset.filter.min_user_interactions": (3, None, True, True),
    "dataset.filter.min_rating": (None, None, True, True),
    "dataset.synthetic.n_users": (1, None, True, True),
    "dataset.synthetic.n_items": (2, None, True, True),
    "dataset.synthetic.n_topics": (1, None, True, True),
    "dataset.synthetic.mean_length": (3, None, True, True),
    "dataset.synthetic.tail_exponent": (0, None, False, True),
    "dataset.synthetic.drift": (0, 1, True, True),
    "dataset.synthetic.series": (0, None, True, True),
    "backbone.hidden_size": (1, None, True, True),
    "backbone.n_layers": (1, None, True, True),
    "backbone.n_heads": (1, None, True, True),
    "backbone.dropout": (0, 1, True, False),
    "backbone.max_len": (2, None, True, True),
    "backbone.mask_prob": (0, 1, False, False),
    "llm.max_length": (1, None, True, True),
    "llm.batch_size": (1, None, True, True),
    "stages.*.epochs": (1, None, True, True),
    "stages.*.lr": (0, None, False, True),
    "stages.*.weight_decay": (0, None, True, True),
    "stages.*.batch_size": (1, None, True, True),
    "stages.*.n_negatives": (1, None, True, True),
    "stages.*.patience": (1, None, True, True),
    "stages.*.grad_accum": (1, None, True, True),
    "stages.*.max_grad_norm": (0, None, True, True),
    "stages.align.mmd_weight": (0, None, True, True),
    "stages.align.infonce_temperature": (0, None, False, True),
    "stages.*.adapter_layers": (0, None, True, True),
    "stages.*.adapter_dropout": (0, 1, True, False),
    "stages.align.mmd_max_rows": (2, None, True, True),
    "stages.disentangle.gate_lr": (0, None, False, True),
    "stages.disentangle.n_bins": (2, None, True, True),
    "stages.disentangle.gate_init_aligned": (-50, 50, True, True),
    "stages.disentangle.gate_init_knn": (-50, 50, True, True),
    "stages.disentangle.expert_loss": (0, None, True, True),
    "stages.disentangle.gate_fit_steps": (1, None, True, True),
    "stages.disentangle.gate_fit_users": (0, None, True, True),
    "stages.disentangle.gate_fit_tolerance": (0, 1, True, False),
    "stages.disentangle.knn_window": (1, None, True, True),
    "eval.ks[*]": (1, None, True, True),
    "eval.batch_size": (1, None, True, True),
    "eval.item_chunk": (1, None, True, True),
    "eval.fit_share": (0, 1, True, False),
    "train.checkpoint_every_steps": (0, None, True, True),
    "train.log_every_steps": (1, None, True, True),
    "train.num_workers": (0, None, True, True),
    "train.threads": (0, None, True, True),
    "train.num_processes": (1, None, True, True),
}


def numeric_keys(obj: Any, prefix: str = "") -> typing.Iterator[tuple[str, Any]]:
    """(dotted key, value) of every number in a config (list items as `key[i]`)."""
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from numeric_keys(value, f"{key}.")
        elif isinstance(value, list):
            yield from ((f"{key}[{i}]", v) for i, v in enumerate(value) if isinstance(v, (int, float)))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield key, value


def range_of(key: str) -> tuple[float | None, float | None, bool, bool] | None:
    parts = key.replace("[", ".[").split(".")
    for pattern, bounds in RANGES.items():
        want = pattern.replace("[", ".[").split(".")
        if len(want) == len(parts) and all(w in ("*", "[*]") or w == p for w, p in zip(want, parts)):
            return bounds
    return None


def _check_ranges(cfg: RunConfig, bad) -> None:
    for key, value in numeric_keys(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            bad(key, f"= {value} must be a finite number.")
        bounds = range_of(key)
        if bounds is None:
            continue
        lo, hi, lo_in, hi_in = bounds
        if (lo is not None and (value < lo or (value == lo and not lo_in))) or (
                hi is not None and (value > hi or (value == hi and not hi_in))):
            low = "" if lo is None else f"{'≥' if lo_in else '>'} {lo:g}"
            high = "" if hi is None else f"{'≤' if hi_in else '<'} {hi:g}"
            bad(key, f"= {value!r} is out of range: it must be {' and '.join(x for x in (low, high) if x)}.")


def validate(cfg: RunConfig, where: str) -> None:
    """Every number in its range, then the cross-field checks that types alone cannot express."""

    def bad(key: str, why: str) -> None:
        raise InputError(f"{where}: key '{key}' {why}")

    _check_ranges(cfg, bad)
    if cfg.dataset.source in ("hub", "local") and not cfg.dataset.path:
        bad("dataset.path", f"is required for source = '{cfg.dataset.source}'.")
    bb = cfg.backbone
    if bb.hidden_size <= 0 or bb.max_len <= 1:
        bad("backbone", "needs hidden_size > 0 and max_len > 1.")
    if bb.kind in ("sasrec", "bert4rec") and bb.hidden_size % bb.n_heads:
        bad("backbone.n_heads", f"must divide hidden_size ({bb.hidden_size}).")
    for stage in STAGES:
        sc: StageConfig = getattr(cfg.stages, stage)
        for k in ("epochs", "batch_size", "grad_accum", "n_negatives"):
            if getattr(sc, k) <= 0:
                bad(f"stages.{stage}.{k}", "must be > 0.")
        if sc.lr <= 0:
            bad(f"stages.{stage}.lr", "must be > 0.")
    if cfg.stages.align.mmd_weight < 0:
        bad("stages.align.mmd_weight", "must be >= 0 (0 turns alignment off).")
    if not cfg.stages.align.rec_anchor and cfg.stages.align.mmd_weight == 0:
        bad("stages.align.rec_anchor", "= false with mmd_weight = 0 leaves stage 2 nothing to learn; set one of them.")
    if "{text}" not in cfg.llm.text_format:
        bad("llm.text_format", f"= {cfg.llm.text_format!r} has no {{text}} placeholder, where the item text goes.")
    if any(not a.strip() for a in cfg.llm.adapters):
        bad("llm.adapters", "has an empty entry; give hub ids (org/name) or adapter folders.")
    dis = cfg.stages.disentangle
    if dis.n_bins < 2:
        bad("stages.disentangle.n_bins", "must be >= 2 (the last bin is the cold group).")
    if any(e not in dis.experts for e in dis.freeze):
        bad("stages.disentangle.freeze", f"names experts that are not in stages.disentangle.experts ({dis.experts}).")
    unknown = [e for e in dis.experts if e not in ("id", "aligned", "text", "knn")]
    if unknown or not dis.experts or len(set(dis.experts)) != len(dis.experts):
        bad("stages.disentangle.experts", "must be distinct names from 'id', 'aligned', 'text', 'knn'.")
    if dis.knn_window < 1:
        bad("stages.disentangle.knn_window", "must be >= 1 (the number of recent items the kNN expert averages).")
    if dis.expert_loss < 0:
        bad("stages.disentangle.expert_loss", "must be >= 0 (0 = the mixed loss only).")
    if dis.gate_fit == "heldout" and dis.gate_fit_floor == "stage1" and "id" not in dis.experts:
        bad("stages.disentangle.gate_fit_floor", "= \"stage1\" falls back to stage 1 through the 'id' expert; "
            "add 'id' to stages.disentangle.experts or use \"sr\".")
    if dis.gate_fit_steps <= 0:
        bad("stages.disentangle.gate_fit_steps", "must be > 0.")
    if dis.gate_fit_users < 0:
        bad("stages.disentangle.gate_fit_users", "must be >= 0 (0 = every fit-split user).")
    if not 0.0 <= cfg.eval.fit_share < 1.0:
        bad("eval.fit_share", f"= {cfg.eval.fit_share} must be in [0, 1): the share of validation users kept for "
                              "held-out fitting (the rest select models).")
    if dis.gate_fit == "heldout" and cfg.eval.fit_share <= 0:
        bad("stages.disentangle.gate_fit", "= 'heldout' needs a fit split: set eval.fit_share > 0 (e.g. "
                                           "0.5), or stages.disentangle.gate_fit = \"train\" (the gate learned on the "
                                           "training loss, DESIGN §3).")
    metric = cfg.eval.select_metric
    name, _, k = metric.partition("@")
    if name not in ("HR", "NDCG", "MRR") or not k.isdigit() or int(k) not in cfg.eval.ks:
        bad("eval.select_metric", f"= '{metric}' must be HR|NDCG|MRR@K with K in eval.ks {cfg.eval.ks}.")


def parse_stages(spec: str | None) -> list[str]:
    if not spec:
        return list(STAGES)
    stages = [s.strip() for s in spec.split(",") if s.strip()]
    for s in stages:
        if s not in STAGES:
            raise InputError(f"--stages: unknown stage '{s}'. Use a comma list of {', '.join(STAGES)}.")
    return [s for s in STAGES if s in stages]  # always in pipeline order


# ───────────────────────────── TOML writing ─────────────────────────────


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: dict, _prefix: str = "") -> str:
    """Write a nested dict of scalars / lists / tables as TOML (None values are left out)."""
    lines = []
    tables = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines)
    for key, value in tables:
        name = f"{_prefix}{key}"
        scalars = any(not isinstance(v, dict) and v is not None for v in value.values())
        body = to_toml(value, f"{name}.").strip("\n")
        if scalars:
            out += f"\n\n[{name}]\n" + body
        else:
            out += "\n\n" + body
    return out.strip("\n") + "\n"


def config_to_toml(cfg: RunConfig) -> str:
    return to_toml(cfg.to_dict())


def load_saved_config(path: Path) -> RunConfig:
    """The fully resolved config.toml of a run folder."""
    data = read_toml(path)
    cfg = build(RunConfig, data, str(path))
    validate(cfg, str(path))
    return cfg
