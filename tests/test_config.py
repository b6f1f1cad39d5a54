"""core.config: preset layering, inline tables, --set, errors that name the file and the key, round trip,
and every bundled preset validates."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from core.config import (
    PRESET_KINDS, SECTION_TYPES, RunConfig, build, config_to_toml, list_presets, load_run_config,
    load_saved_config, parse_set, parse_stages, read_toml, resolve,
)
from core.errors import InputError


@pytest.fixture
def user_presets(tmp_path, monkeypatch) -> Path:
    """A $PADTUI_PRESETS folder with one preset of each kind, layered on the bundled ones."""
    root = tmp_path / "presets"
    for kind in PRESET_KINDS:
        (root / kind).mkdir(parents=True)
    (root / "datasets" / "mydata.toml").write_text(
        'description = "mine"\nsource = "synthetic"\n[synthetic]\nn_users = 300\nn_items = 90\n'
        '[filter]\nmin_user_interactions = 6\n'
    )
    (root / "backbones" / "mybb.toml").write_text('kind = "gru4rec"\nhidden_size = 32\nn_layers = 3\n')
    (root / "llms" / "myllm.toml").write_text('model = "some/llm"\npooling = "last"\nmax_length = 40\n')
    (root / "runs" / "myrun.toml").write_text(
        'description = "layered"\ndataset = "mydata"\nbackbone = "mybb"\nllm = "myllm"\nseed = 7\n'
        '[stages.pretrain]\nepochs = 3\nlr = 0.01\n'
    )
    monkeypatch.setenv("PADTUI_PRESETS", str(root))
    return root


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ───────────────────────────── layering ─────────────────────────────


def test_run_preset_names_part_presets(user_presets):
    cfg = load_run_config("myrun")
    assert cfg.preset == "myrun" and cfg.seed == 7
    assert cfg.dataset.preset == "mydata" and cfg.dataset.synthetic.n_users == 300
    assert cfg.dataset.synthetic.n_topics == 12  # not in the preset: the schema default
    assert cfg.dataset.filter.min_user_interactions == 6
    assert cfg.backbone.preset == "mybb" and cfg.backbone.kind == "gru4rec" and cfg.backbone.n_layers == 3
    assert cfg.llm.preset == "myllm" and cfg.llm.model == "some/llm" and cfg.llm.pooling == "last"
    assert cfg.stages.pretrain.epochs == 3 and cfg.stages.pretrain.lr == 0.01
    assert cfg.stages.align.epochs == 15  # untouched stages keep their defaults


def test_set_overrides_win_over_every_layer(user_presets):
    cfg = load_run_config("myrun", [
        "backbone.hidden_size=48", "dataset.synthetic.n_items=80", "stages.pretrain.epochs=1",
        "llm.max_length=12", "seed=3",
    ])
    assert cfg.backbone.hidden_size == 48 and cfg.backbone.n_layers == 3 and cfg.backbone.preset == "mybb"
    assert cfg.dataset.synthetic.n_items == 80 and cfg.dataset.synthetic.n_users == 300
    assert cfg.stages.pretrain.epochs == 1 and cfg.stages.pretrain.lr == 0.01
    assert cfg.llm.max_length == 12 and cfg.llm.pooling == "last"
    assert cfg.seed == 3


def test_set_can_swap_a_part_preset(user_presets):
    cfg = load_run_config("myrun", ["backbone=sasrec"])
    assert cfg.backbone.kind == "sasrec" and cfg.backbone.preset == "sasrec"
    cfg = load_run_config("myrun", ['backbone.preset="bert4rec"', "backbone.mask_prob=0.3"])
    assert cfg.backbone.kind == "bert4rec" and cfg.backbone.mask_prob == 0.3


def test_inline_table_with_preset_and_overrides(user_presets, tmp_path):
    path = write(tmp_path / "inline.toml", (
        'dataset = { preset = "mydata", synthetic = { n_items = 70 } }\n'
        'llm = "myllm"\n'
        '[backbone]\npreset = "mybb"\nhidden_size = 24\n'
    ))
    cfg = load_run_config(str(path), ["backbone.n_layers=1"])
    assert cfg.preset == "inline"
    assert cfg.dataset.preset == "mydata"
    assert cfg.dataset.synthetic.n_items == 70 and cfg.dataset.synthetic.n_users == 300
    assert cfg.backbone.kind == "gru4rec" and cfg.backbone.hidden_size == 24 and cfg.backbone.n_layers == 1


def test_inline_table_without_preset_starts_from_defaults(tmp_path):
    path = write(tmp_path / "plain.toml", '[backbone]\nkind = "bert4rec"\nhidden_size = 32\n')
    cfg = load_run_config(str(path))
    assert cfg.backbone.kind == "bert4rec" and cfg.backbone.hidden_size == 32 and cfg.backbone.preset == ""
    assert cfg.dataset.preset == "synthetic"  # parts left out use the default presets
    assert cfg.llm.preset == "smollm2-135m"


def test_user_preset_wins_a_name_clash(user_presets):
    write(user_presets / "datasets" / "synthetic.toml", 'source = "synthetic"\n[synthetic]\nn_users = 42\n')
    cfg = load_run_config("demo")
    assert cfg.dataset.preset == "synthetic" and cfg.dataset.synthetic.n_users == 42
    assert list_presets("datasets")["synthetic"] == user_presets / "datasets" / "synthetic.toml"


def test_set_values_are_read_as_toml():
    assert parse_set("stages.pretrain.epochs=5") == ("stages.pretrain.epochs", 5)
    assert parse_set("stages.pretrain.lr=1e-3") == ("stages.pretrain.lr", 0.001)
    assert parse_set("eval.mask_history=false") == ("eval.mask_history", False)
    assert parse_set("eval.ks=[5, 10]") == ("eval.ks", [5, 10])
    assert parse_set("llm.model=org/model-1b") == ("llm.model", "org/model-1b")  # not TOML: a plain string
    assert parse_set('dataset.items.text="{title} = {year}"') == ("dataset.items.text", "{title} = {year}")
    cfg = load_run_config("demo", ["eval.ks=[5, 10]", "eval.select_metric=HR@5", "stages.pretrain.lr=1"])
    assert cfg.eval.ks == [5, 10] and cfg.eval.select_metric == "HR@5"
    assert cfg.stages.pretrain.lr == 1.0 and isinstance(cfg.stages.pretrain.lr, float)  # int → float


# ───────────────────────────── errors ─────────────────────────────


def test_unknown_key_names_the_file_and_dotted_key(tmp_path):
    path = write(tmp_path / "typo.toml", 'dataset = "synthetic"\n[stages.pretrain]\nepoch = 3\n')
    with pytest.raises(InputError) as exc:
        load_run_config(str(path))
    msg = str(exc.value)
    assert str(path) in msg and "'stages.pretrain.epoch'" in msg and "epochs" in msg  # with a suggestion


def test_unknown_key_in_a_part_preset_names_that_file(user_presets):
    bad = write(user_presets / "backbones" / "badbb.toml", 'kind = "sasrec"\nhiden_size = 8\n')
    with pytest.raises(InputError) as exc:
        load_run_config("myrun", ["backbone=badbb"])
    assert str(bad) in str(exc.value) and "'hiden_size'" in str(exc.value)


def test_unknown_key_in_an_inline_table(tmp_path):
    path = write(tmp_path / "inline.toml", 'dataset = { preset = "synthetic", synthetic = { n_userz = 3 } }\n')
    with pytest.raises(InputError, match=r"dataset\.synthetic\.n_userz") as exc:
        load_run_config(str(path))
    assert str(path) in str(exc.value)


def test_unknown_set_key():
    with pytest.raises(InputError) as exc:
        load_run_config("demo", ["stages.pretrain.epochz=3"])
    msg = str(exc.value)
    assert "'stages.pretrain.epochz'" in msg and "--set" in msg and "demo.toml" in msg


def test_set_through_a_scalar():
    with pytest.raises(InputError, match="seed"):
        load_run_config("demo", ["seed.value=3"])


def test_set_without_equals():
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_set("stages.pretrain.epochs")


@pytest.mark.parametrize("assignment, key, words", [
    ('stages.pretrain.epochs="three"', "stages.pretrain.epochs", "int"),
    ("backbone.hidden_size=1.5", "backbone.hidden_size", "int"),
    ("llm.normalize=1", "llm.normalize", "true or false"),
    ("seed=true", "seed", "number"),
    ("eval.ks=5", "eval.ks", "list"),
    ('eval.ks=["a"]', "eval.ks[0]", "int"),
    ("stages.pretrain=3", "stages.pretrain", "table"),
])
def test_wrong_type(assignment, key, words):
    with pytest.raises(InputError) as exc:
        load_run_config("demo", [assignment])
    assert f"'{key}'" in str(exc.value) and words in str(exc.value)


@pytest.mark.parametrize("assignment, key, allowed", [
    ("backbone.kind=lstm", "backbone.kind", "'sasrec' | 'gru4rec' | 'bert4rec'"),
    ("stages.pretrain.loss=mse", "stages.pretrain.loss", "'bce' | 'ce' | 'sampled_softmax'"),
    ("llm.pooling=max", "llm.pooling", "'mean' | 'last' | 'cls' | 'prompt_last'"),
    ("dataset.source=s3", "dataset.source", "'hub' | 'local' | 'asset' | 'synthetic'"),
])
def test_bad_literal_value(assignment, key, allowed):
    with pytest.raises(InputError) as exc:
        load_run_config("demo", [assignment])
    assert f"'{key}'" in str(exc.value) and allowed in str(exc.value)


@pytest.mark.parametrize("assignment, key", [
    ("backbone.n_heads=3", "backbone.n_heads"),
    ("stages.pretrain.epochs=0", "stages.pretrain.epochs"),
    ("stages.align.lr=-1", "stages.align.lr"),
    ("stages.align.mmd_weight=-0.1", "stages.align.mmd_weight"),
    ("stages.disentangle.n_bins=1", "stages.disentangle.n_bins"),
    ('stages.disentangle.experts=["id", "id"]', "stages.disentangle.experts"),
    ('stages.disentangle.experts=["id", "visual"]', "stages.disentangle.experts"),
    ("stages.disentangle.expert_loss=-1", "stages.disentangle.expert_loss"),
    ("stages.disentangle.gate_fit_steps=0", "stages.disentangle.gate_fit_steps"),
    ('stages.disentangle.gate_fit="test"', "stages.disentangle.gate_fit"),
    ('stages.disentangle.gate_fit="valid"', "stages.disentangle.gate_fit"),  # fitted on validation: gone
    ("stages.disentangle.gate_fit_users=-1", "stages.disentangle.gate_fit_users"),
    ("stages.disentangle.knn_window=0", "stages.disentangle.knn_window"),
    ('stages.align.kernel="rbf"', "stages.align.kernel"),
    ('stages.align.fusion_init="zeros"', "stages.align.fusion_init"),
    ("eval.fit_share=-0.1", "eval.fit_share"),
    ("eval.select_metric=NDCG@50", "eval.select_metric"),
    ("eval.select_metric=AUC", "eval.select_metric"),
    ("dataset.source=local", "dataset.path"),
])
def test_cross_field_checks(assignment, key):
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        load_run_config("demo", [assignment])


def test_falling_back_to_stage_1_needs_the_id_expert():
    with pytest.raises(InputError, match=r"stages\.disentangle\.gate_fit_floor.*'id'"):
        load_run_config("demo", ['stages.disentangle.experts=["aligned", "text"]', 'stages.disentangle.gate_fit="heldout"',
                                 'stages.disentangle.gate_fit_floor="stage1"'])
    assert load_run_config("demo", ['stages.disentangle.gate_fit_floor="stage1"']).stages.disentangle.gate_fit_floor == "stage1"


def test_malformed_toml_names_file_and_line(tmp_path):
    path = write(tmp_path / "broken.toml", 'seed = 1\n[stages.pretrain\nepochs = 3\n')
    with pytest.raises(InputError) as exc:
        load_run_config(str(path))
    assert str(path) in str(exc.value) and "line 2" in str(exc.value)


def test_malformed_part_preset_names_it(user_presets):
    bad = write(user_presets / "llms" / "broken.toml", 'model = "x"\npooling = \n')
    with pytest.raises(InputError) as exc:
        load_run_config("myrun", ["llm=broken"])
    assert str(bad) in str(exc.value) and "line 2" in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_run_config(str(tmp_path / "nope.toml"))


@pytest.mark.parametrize("args, kind, known", [
    (("nope",), "run", "demo"),
    (("demo", ["dataset=nope"]), "dataset", "synthetic"),
    (("demo", ["backbone=transformer"]), "backbone", "gru4rec"),
    (("demo", ["llm=gpt5"]), "llm", "smollm2-135m"),
])
def test_unknown_preset_lists_the_known_ones(args, kind, known):
    with pytest.raises(InputError) as exc:
        load_run_config(*args)
    msg = str(exc.value)
    assert f"unknown {kind} preset" in msg and known in msg and "padtui presets list" in msg


def test_parse_stages():
    assert parse_stages(None) == ["pretrain", "align", "disentangle"]
    assert parse_stages("disentangle, pretrain") == ["pretrain", "disentangle"]
    with pytest.raises(InputError, match="'finetune'"):
        parse_stages("pretrain,finetune")


# ───────────────────────────── round trip and bundled presets ─────────────────────────────


def round_trip(cfg: RunConfig) -> RunConfig:
    return build(RunConfig, tomllib.loads(config_to_toml(cfg)), "config.toml")


@pytest.mark.parametrize("name", sorted(list_presets("runs")))
def test_every_run_preset_validates_and_round_trips(name):
    cfg = load_run_config(name)
    assert cfg.preset == name
    assert round_trip(cfg) == cfg


def test_round_trip_of_unusual_values(user_presets, tmp_path):
    cfg = load_run_config("myrun", [
        'dataset.items.text="Title: \\"{title}\\"\\nYear: {year} \\\\ done"', "dataset.filter.min_rating=3.5",
        "stages.pretrain.lr=1e-05", "eval.ks=[1, 50]", "eval.select_metric=MRR@50",
        'stages.disentangle.experts=["text", "id"]', 'description="tabs\tand ünïcode —"',
    ])
    assert cfg.dataset.items.text == 'Title: "{title}"\nYear: {year} \\ done'
    back = round_trip(cfg)
    assert back == cfg
    saved = write(tmp_path / "config.toml", config_to_toml(cfg))
    assert load_saved_config(saved) == cfg
    assert resolve(tomllib.loads(config_to_toml(cfg)), "x").dataset == cfg.dataset


def test_min_rating_none_survives_the_round_trip():
    cfg = load_run_config("demo")
    assert cfg.dataset.filter.min_rating is None
    assert round_trip(cfg).dataset.filter.min_rating is None


@pytest.mark.parametrize("kind, name", [
    (kind, name) for kind in ("datasets", "backbones", "llms") for name in sorted(list_presets(kind))
])
def test_every_part_preset_validates(kind, name):
    path = list_presets(kind)[name]
    part = build(SECTION_TYPES[kind], read_toml(path), str(path))
    assert part.description, f"{path}: give the preset a description (pickers show it)"
    # and it works inside a run: cross-field checks included
    key = {"datasets": "dataset", "backbones": "backbone", "llms": "llm"}[kind]
    cfg = resolve({key: name}, f"test ({path})")
    assert getattr(cfg, key).preset == name


def _out_of_range(key: str, value) -> list:
    """Values just outside the key's range, plus NaN / inf for floats."""
    from core.config import range_of

    lo, hi, lo_in, hi_in = range_of(key)
    step = 1 if isinstance(value, int) else 1e-9
    out = []
    if lo is not None:
        out.append(type(value)(lo - step) if lo_in else type(value)(lo))
    if hi is not None:
        out.append(type(value)(hi + step) if hi_in else type(value)(hi))
    if isinstance(value, float):
        out += [float("nan"), float("inf")]
    return out


def test_every_numeric_key_has_a_range_and_out_of_range_values_are_named(runs_dir):
    """Walk every number of a resolved config: each has a range, and a value outside it is an InputError that
    names the key — before any run folder exists (`padtui run` exits 2 and leaves the runs folder empty)."""
    from core.config import numeric_keys, range_of, resolve

    cfg = load_run_config("demo")
    keys = dict(numeric_keys(cfg))
    missing = [k for k in keys if range_of(k) is None]
    assert not missing, f"numeric keys without a range in core.config.RANGES: {missing}"
    tried = 0
    for key, value in keys.items():
        for bad in _out_of_range(key, value):
            data = cfg.to_dict()
            node, parts = data, key.replace("]", "").replace("[", ".").split(".")
            for part in parts[:-1]:
                node = node[part]
            last = parts[-1]
            node[int(last) if last.isdigit() else last] = bad
            with pytest.raises(InputError, match=key.split("[")[0].replace(".", r"\.")):
                resolve(data, "test")
            tried += 1
    assert tried > 100


@pytest.mark.parametrize("assignment", ["backbone.n_heads=0", "backbone.n_heads=-2", "eval.batch_size=0",
                                        "eval.item_chunk=0", "backbone.dropout=5.0",
                                        "stages.pretrain.weight_decay=-5.0", "stages.pretrain.lr=nan",
                                        "seed=-1", "seed=99999999999", "stages.pretrain.patience=0"])
def test_values_that_used_to_crash_are_exit_2_before_a_run_folder(assignment, runs_dir):
    from test_cli import expect_input_error

    err = expect_input_error("run", "demo", "--set", assignment, "--runs-dir", str(runs_dir))
    assert assignment.split("=")[0] in " ".join(err.split())
    assert list(runs_dir.iterdir()) == []


def test_the_default_stage_3_is_padtui_guard_and_design_stage3_keeps_design():
    """The default was chosen in select mode (README); the method presets pin what they are, whatever the default."""
    default = load_run_config("ml100k-sasrec-smollm2").stages.disentangle
    guard = load_run_config("ml100k-sasrec-smollm2", ["method=padtui-guard"]).stages.disentangle
    assert default == guard
    assert (default.experts, default.mix, default.gate_fit, default.gate_fit_floor) == (
        ["id", "aligned", "text", "knn"], "logprob", "heldout", "stage1")
    design = load_run_config("ml100k-sasrec-smollm2", ["method=design-stage3"]).stages.disentangle
    assert (design.experts, design.mix, design.gate_fit) == (["id", "aligned", "text"], "scores", "train")
    for method in ("pad-official", "pad-heldout", "padtui-knn-heldout"):
        assert load_run_config("ml100k-sasrec-smollm2", [f"method={method}"]).stages.disentangle.mix == "scores"
