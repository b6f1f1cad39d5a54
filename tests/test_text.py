"""core.text: LLM item embeddings, on tiny randomly initialised models built on the fly (no download)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from core import text
from core.config import LLMConfig
from core.errors import InputError

TEXTS = [
    "Toy Story (1995). Genres: Animation Children Comedy",
    "Star Wars (1977). Genres: Action Adventure Romance Sci-Fi War",
    "Scream (1996). Genres: Horror Thriller",
    "Fargo (1996). Genres: Crime Drama Thriller",
    "Heat (1995)",
    "The Godfather (1972). Genres: Action Crime Drama",
    "Babe (1995). Genres: Children Comedy Drama",
    "Alien (1979). Genres: Action Horror Sci-Fi Thriller War",
    "Casablanca (1942). Genres: Drama Romance War",
    "",  # an empty text still gets a vector
    "Toy Story",
]
TEMPLATE = "{movie_title} ({release_year}). Genres: {class}"
SPECIALS = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "<s>", "</s>"]


def _word_tokenizer(decoder: bool):
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for t in TEXTS for w in t.lower().replace("(", " ( ").replace(")", " ) ").split()})
    words += ["this", "item", "means", "in", "one", "word", '"', ":", ".", "-", "war", "sci", "fi"]
    vocab = {w: i for i, w in enumerate(SPECIALS + sorted(set(words)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if decoder:  # BOS only, no pad token: load_llm must fall back to eos
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
        )
    return fast, vocab


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    from transformers import LlamaConfig, LlamaModel

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer, vocab = _word_tokenizer(decoder=True)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"],
    )
    LlamaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer, vocab = _word_tokenizer(decoder=False)
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=128, pad_token_id=vocab["[PAD]"],
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory) -> Path:
    """A tiny llama GGUF (f32 tensors, byte-level BPE vocabulary) written with the gguf library."""
    import gguf
    import numpy as np
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder = tmp_path_factory.mktemp("tiny-gguf")
    tokens = list(bytes_to_unicode().values()) + ["to", "toy", "<|endoftext|>"]
    hidden, layers, heads, kv_heads, ffn = 32, 2, 4, 2, 64
    writer = gguf.GGUFWriter(str(folder / "tiny.gguf"), "llama")
    writer.add_block_count(layers)
    writer.add_context_length(128)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (len(tokens) - 1) + [3])
    writer.add_token_merges(["t o", "to y"])
    writer.add_bos_token_id(len(tokens) - 1)
    writer.add_eos_token_id(len(tokens) - 1)
    rng = np.random.default_rng(0)

    def weight(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    kv = kv_heads * hidden // heads
    writer.add_tensor("token_embd.weight", weight(len(tokens), hidden))
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    for i in range(layers):
        for name, shape in (
            ("attn_norm", (hidden,)), ("ffn_norm", (hidden,)), ("attn_q", (hidden, hidden)), ("attn_k", (kv, hidden)),
            ("attn_v", (kv, hidden)), ("attn_output", (hidden, hidden)), ("ffn_gate", (ffn, hidden)),
            ("ffn_up", (ffn, hidden)), ("ffn_down", (hidden, ffn)),
        ):
            value = np.ones(shape, np.float32) if name.endswith("norm") else weight(*shape)
            writer.add_tensor(f"blk.{i}.{name}.weight", value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return folder


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PADTUI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def cfg_for(folder: Path, **kw) -> LLMConfig:
    return LLMConfig(model=str(folder), **{"batch_size": 4, "max_length": 32, **kw})


def embed(folder: Path, texts=TEXTS, **kw) -> torch.Tensor:
    return text.embed_items(texts, cfg_for(folder, **kw), TEMPLATE, "map-1", cache=False)


def test_shape_padding_row_and_poolings_differ(llama_dir, bert_dir):
    tables = {p: embed(llama_dir, pooling=p) for p in ("mean", "last", "prompt_last")}
    tables["cls"] = embed(bert_dir, pooling="cls")  # a decoder's first token is BOS for every item: use BERT
    for pooling, table in tables.items():
        assert table.shape == (len(TEXTS) + 1, 32), pooling
        assert table.dtype == torch.float32
        assert torch.isfinite(table).all(), pooling
        assert torch.count_nonzero(table[0]) == 0, pooling
        assert len({tuple(row.tolist()) for row in table[1:]}) == len(TEXTS), f"{pooling}: two items share a row"
    names = list(tables)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not torch.allclose(tables[a], tables[b], atol=1e-4), (a, b)


def test_last_pooling_is_last_non_pad_state(llama_dir):
    cfg = cfg_for(llama_dir, pooling="last")
    tokenizer, model = text.load_llm(cfg)
    assert tokenizer.pad_token == "</s>"  # the tiny tokenizer has none: eos stands in
    table = text.embed_items(TEXTS, cfg, TEMPLATE, "m", cache=False)
    with torch.inference_mode():
        for item, sentence in enumerate(TEXTS, start=1):
            ids = text._encode(tokenizer, [sentence], cfg)[0]
            alone = model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
            torch.testing.assert_close(table[item], alone, atol=1e-5, rtol=1e-4)
    # pool() itself, on both padding sides: the state at the last real position
    hidden = torch.randn(2, 5, 3)
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]])
    assert torch.equal(text.pool(hidden, right, "last"), torch.stack([hidden[0, 2], hidden[1, 4]]))
    assert torch.equal(text.pool(hidden, left, "last"), torch.stack([hidden[0, 4], hidden[1, 4]]))
    assert torch.equal(text.pool(hidden, left, "cls"), torch.stack([hidden[0, 2], hidden[1, 1]]))
    torch.testing.assert_close(text.pool(hidden, right, "mean")[0], hidden[0, :3].mean(0))


@pytest.mark.parametrize("pooling", ["mean", "prompt_last"])
def test_rows_follow_item_order_whatever_the_batching(llama_dir, pooling):
    batched = embed(llama_dir, pooling=pooling, batch_size=4)
    one_by_one = embed(llama_dir, pooling=pooling, batch_size=1)
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-4)
    order = [3, 0, 10, 7, 1, 9, 2, 4, 8, 6, 5]
    shuffled = embed(llama_dir, [TEXTS[i] for i in order], pooling=pooling)
    torch.testing.assert_close(shuffled[1:], batched[1:][order], atol=1e-5, rtol=1e-4)


def test_bert_cls_normalised_and_progress(bert_dir):
    calls = []
    table = text.embed_items(
        TEXTS, cfg_for(bert_dir, pooling="cls", normalize=True), TEMPLATE, "m", cache=False,
        progress=lambda done, total, speed: calls.append((done, total, speed)),
    )
    torch.testing.assert_close(table[1:].norm(dim=1), torch.ones(len(TEXTS)))
    assert [c[0] for c in calls] == [4, 8, 11] and all(c[1] == 11 and c[2] > 0 for c in calls)


def test_prompt_last_keeps_the_prompt_ending_when_cut(llama_dir):
    cfg = cfg_for(llama_dir, pooling="prompt_last", max_length=8, prompt='this item: "{text}" means in one word:"')
    tokenizer, _ = text.load_llm(cfg)
    ids = text._encode(tokenizer, [TEXTS[1]], cfg)[0]
    tail = tokenizer('" means in one word:"', add_special_tokens=False)["input_ids"]
    assert len(ids) == 8 and ids[-len(tail) :] == tail
    with pytest.raises(InputError, match="placeholder"):
        text._encode(tokenizer, TEXTS, cfg_for(llama_dir, pooling="prompt_last", prompt="no slot"))


def test_cache_hit_is_identical_and_fast(llama_dir, cache, monkeypatch):
    cfg = cfg_for(llama_dir)
    first = text.embed_items(TEXTS, cfg, TEMPLATE, "map-1")
    path = text.embedding_cache_path(cfg, TEMPLATE, "map-1")
    assert path.is_file() and path.parent == cache / "embeddings"

    def no_model(*a, **k):
        raise AssertionError("a cache hit must not load the model")

    monkeypatch.setattr(text, "load_llm", no_model)
    start = time.perf_counter()
    again = text.embed_items(TEXTS, cfg, TEMPLATE, "map-1")
    assert time.perf_counter() - start < 0.5
    assert torch.equal(first, again)


def test_cache_refuses_another_item_count_or_fingerprint(llama_dir):
    cfg = cfg_for(llama_dir)
    text.embed_items(TEXTS, cfg, TEMPLATE, "map-1")
    with pytest.raises(InputError, match=r"built for 11 items, this dataset has 10; delete it"):
        text.embed_items(TEXTS[:-1], cfg, TEMPLATE, "map-1")
    path = text.embedding_cache_path(cfg, TEMPLATE, "map-1")
    other = text.embedding_cache_path(cfg, TEMPLATE, "map-2")
    other.write_bytes(path.read_bytes())  # a file under the wrong name
    with pytest.raises(InputError, match="another fingerprint"):
        text.embed_items(TEXTS, cfg, TEMPLATE, "map-2")
    other.write_bytes(b"garbage")
    with pytest.raises(InputError, match="unreadable"):
        text.embed_items(TEXTS, cfg, TEMPLATE, "map-2")


def mapped_files() -> set[str]:
    """Files this process has memory-mapped (Linux)."""
    with open("/proc/self/maps") as fh:
        return {parts[5].strip() for parts in (line.split(None, 5) for line in fh) if len(parts) == 6}


needs_proc = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")


@needs_proc
def test_table_comes_back_memory_mapped_from_the_cache(llama_dir):
    """A miss computes, writes and then maps the file (no second private copy); a hit maps it too."""
    cfg = cfg_for(llama_dir)
    built = text.embed_items(TEXTS, cfg, TEMPLATE, "map-mm")
    path = text.embedding_cache_path(cfg, TEMPLATE, "map-mm")
    assert str(path.resolve()) in mapped_files()
    again = text.embed_items(TEXTS, cfg, TEMPLATE, "map-mm")
    assert torch.equal(built, again) and built.dtype == torch.float32 and built.shape[0] == len(TEXTS) + 1
    assert (built[0] == 0).all()
    assert torch.equal(text.embed_items(TEXTS, cfg, TEMPLATE, "map-mm", cache=False), built)  # same numbers


@needs_proc
def test_mapped_table_round_trip(tmp_path):
    table = torch.randn(5001, 48, generator=torch.Generator().manual_seed(0))
    table[0] = 0
    path = tmp_path / "embeddings" / "t.safetensors"
    text._save_embedding_cache(path, table, "fp", LLMConfig(model="x"), "{title}", 1.0)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the temp file was renamed into place
    loaded = text.load_embedding_cache(path, "fp", 5000)
    assert torch.equal(loaded, table) and str(path.resolve()) in mapped_files()
    loaded[1] += 1.0  # copy-on-write: writable, and the file keeps its values
    assert torch.equal(text.load_embedding_cache(path, "fp", 5000), table)
    with pytest.raises(InputError, match="another fingerprint"):
        text.load_embedding_cache(path, "other", 5000)


def test_fingerprint_covers_what_changes_the_table(llama_dir):
    base = cfg_for(llama_dir)
    fp = text.fingerprint(base, TEMPLATE, "h")
    assert fp == text.fingerprint(cfg_for(llama_dir), TEMPLATE, "h") and len(fp) == 16
    assert fp == text.fingerprint(cfg_for(llama_dir, batch_size=64, dtype="bfloat16"), TEMPLATE, "h")
    assert fp == text.fingerprint(cfg_for(llama_dir, prompt="unused by mean {text}"), TEMPLATE, "h")
    changed = [
        text.fingerprint(base, TEMPLATE, "h2"),
        text.fingerprint(base, "{movie_title}", "h"),
        text.fingerprint(cfg_for(llama_dir, pooling="last"), TEMPLATE, "h"),
        text.fingerprint(cfg_for(llama_dir, max_length=33), TEMPLATE, "h"),
        text.fingerprint(cfg_for(llama_dir, normalize=True), TEMPLATE, "h"),
        text.fingerprint(cfg_for(llama_dir, revision="v2"), TEMPLATE, "h"),
        text.fingerprint(LLMConfig(model="org/other"), TEMPLATE, "h"),
    ]
    assert len({fp, *changed}) == len(changed) + 1


def test_unknown_model_is_an_input_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=r"nosuch-org/nosuch-model.*huggingface-cli login.*HF_HUB_OFFLINE"):
        text.load_llm(LLMConfig(model="nosuch-org/nosuch-model"))
    with pytest.raises(InputError, match="no such folder"):
        text.load_llm(LLMConfig(model=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="could not be loaded"):
        text.load_llm(LLMConfig(model=str(tmp_path / "empty")))
    with pytest.raises(InputError, match="padtui assets fetch smollm2"):
        text.load_llm(LLMConfig(model="asset:smollm2", gguf_file="auto"))


def test_nan_rows_name_the_items(llama_dir, tmp_path):
    from transformers import AutoModel

    broken = tmp_path / "nan-llama"
    model = AutoModel.from_pretrained(llama_dir)
    tokenizer, vocab = _word_tokenizer(decoder=True)
    with torch.no_grad():
        model.embed_tokens.weight[vocab["scream"]] = float("nan")
    model.save_pretrained(broken)
    tokenizer.save_pretrained(broken)
    with pytest.raises(InputError, match=r"item ids 3\. "):
        text.embed_items(TEXTS, cfg_for(broken), TEMPLATE, "m")
    assert not text.embedding_cache_path(cfg_for(broken), TEMPLATE, "m").exists()


def test_nearest_items():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0], [2.0, 0.1]])
    got = text.nearest_items(table, 1, k=3)
    assert [i for i, _ in got] == [5, 2, 3]
    assert got[0][1] == pytest.approx(2.0 / (4.01**0.5))
    assert len(text.nearest_items(table, 4, k=10)) == 4  # everything but the query and padding
    with pytest.raises(InputError, match="out of range"):
        text.nearest_items(table, 0)


def test_gguf_is_dequantised_once_into_the_cache(gguf_dir, cache):
    from transformers import AutoModel

    cfg = LLMConfig(model=str(gguf_dir), gguf_file="auto", batch_size=4, max_length=32)
    tokenizer, model = text.load_llm(cfg)
    (copy,) = [p for p in (cache / "llm").iterdir() if not p.name.startswith(".")]
    marker = copy / text.LLM_CACHE_MARKER
    assert marker.is_file() and (copy / "model.safetensors").is_file()
    stamp = marker.stat().st_mtime_ns
    ids = torch.tensor([tokenizer("toy story")["input_ids"]])
    direct = AutoModel.from_pretrained(gguf_dir, gguf_file="tiny.gguf").eval()
    with torch.inference_mode():
        torch.testing.assert_close(model(input_ids=ids).last_hidden_state, direct(input_ids=ids).last_hidden_state)
    text.load_llm(cfg)
    assert marker.stat().st_mtime_ns == stamp and len(list((cache / "llm").iterdir())) == 1
    table = text.embed_items(["toy story", "to be"], cfg, "{title}", "g")
    assert table.shape == (3, 32) and torch.isfinite(table).all()
