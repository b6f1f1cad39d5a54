"""LLM2Vec as its authors load it, on a tiny Llama built here: a decoder read bidirectionally, PEFT adapters
applied in order and merged, mean pooling. The hub path is the same code with hub ids."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import torch

from core.config import LLMConfig, load_run_config
from core.errors import InputError
from core.text import embed_items, fingerprint, load_llm

peft = pytest.importorskip("peft")


def tiny_llama(folder: Path) -> Path:
    """A 2-layer Llama (hidden 32) with a character-level tokenizer that adds a BOS token, saved as a folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    chars = list(string.ascii_lowercase + string.digits + " ")
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>"] + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3)
    LlamaModel(config).save_pretrained(folder)
    return folder


def lora(base: Path, folder: Path, seed: int) -> Path:
    """A LoRA adapter for the tiny Llama with non-zero B (a freshly made adapter is a no-op until trained)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    model = AutoModel.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def adapters(llama, tmp_path_factory) -> list[Path]:
    return [lora(llama, tmp_path_factory.mktemp("mntp"), 1), lora(llama, tmp_path_factory.mktemp("supervised"), 2)]


def first_state(model, tokenizer, text: str) -> torch.Tensor:
    ids = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        return model(**ids).last_hidden_state[0, 0]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_bidirectional_reading_lets_the_last_token_change_the_first_state(llama, attn, monkeypatch):
    from transformers import AutoModel

    real = AutoModel.from_pretrained
    monkeypatch.setattr(AutoModel, "from_pretrained",
                        classmethod(lambda cls, *a, **k: real(*a, attn_implementation=attn, **k)))
    causal_tok, causal = load_llm(LLMConfig(model=str(llama)))
    assert torch.equal(first_state(causal, causal_tok, "abc x"), first_state(causal, causal_tok, "abc y"))
    tok, model = load_llm(LLMConfig(model=str(llama), bidirectional=True))
    assert not torch.allclose(first_state(model, tok, "abc x"), first_state(model, tok, "abc y"))


def test_bidirectional_padding_does_not_leak_into_the_real_tokens(llama):
    """Right padding: a text's pooled vector is the same alone and in a batch with a longer text."""
    tok, model = load_llm(LLMConfig(model=str(llama), bidirectional=True))
    cfg = LLMConfig(model=str(llama), bidirectional=True, batch_size=1)
    alone = embed_items(["ab"], cfg, "{title}", "h", cache=False)[1]
    batched = embed_items(["ab", "a much longer title"], LLMConfig(model=str(llama), bidirectional=True,
                                                                    batch_size=2), "{title}", "h", cache=False)[1]
    assert torch.allclose(alone, batched, atol=1e-5)


def test_adapters_are_merged_in_order_and_change_the_output(llama, adapters):
    from peft import PeftModel
    from transformers import AutoModel

    tok, plain = load_llm(LLMConfig(model=str(llama), bidirectional=True))
    _, adapted = load_llm(LLMConfig(model=str(llama), bidirectional=True, adapters=[str(a) for a in adapters]))
    assert type(adapted).__name__ == "LlamaModel"  # merged: a plain transformers model, no PEFT wrapper left
    assert not torch.allclose(first_state(plain, tok, "abc"), first_state(adapted, tok, "abc"))
    # the same as applying them by hand, one after the other, each merged
    by_hand = AutoModel.from_pretrained(llama)
    for a in adapters:
        by_hand = PeftModel.from_pretrained(by_hand, str(a)).merge_and_unload()
    by_hand.config.is_causal = False
    for m in by_hand.modules():
        if isinstance(getattr(m, "is_causal", None), bool):
            m.is_causal = False
    assert torch.allclose(first_state(adapted, tok, "abc"), first_state(by_hand.eval(), tok, "abc"), atol=1e-5)
    _, one = load_llm(LLMConfig(model=str(llama), bidirectional=True, adapters=[str(adapters[0])]))
    assert not torch.allclose(first_state(one, tok, "abc"), first_state(adapted, tok, "abc"))


def test_the_table_key_counts_the_new_options_only_when_set(llama, adapters):
    base = LLMConfig(model="asset:smollm2")
    assert fingerprint(base, "{title}", "h") == fingerprint(LLMConfig(model="asset:smollm2"), "{title}", "h")
    keys = {fingerprint(c, "{title}", "h") for c in (
        base, LLMConfig(model="asset:smollm2", bidirectional=True),
        LLMConfig(model="asset:smollm2", adapters=[str(adapters[0])]),
        LLMConfig(model="asset:smollm2", text_format="<u>{text}</u>"))}
    assert len(keys) == 4


def test_bad_adapters_are_named(llama, tmp_path):
    with pytest.raises(InputError, match="llm.adapters: '.*nowhere/' is no folder"):
        load_llm(LLMConfig(model=str(llama), adapters=[str(tmp_path / "nowhere") + "/"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="could not be applied"):
        load_llm(LLMConfig(model=str(llama), adapters=[str(tmp_path / "empty")]))


def test_an_encoder_cannot_be_made_bidirectional_twice(tmp_path):
    from test_resume import tiny_llm

    folder = tiny_llm(tmp_path / "bert")
    model_layers = load_llm(LLMConfig(model=str(folder)))[1]
    if not any(isinstance(getattr(m, "is_causal", None), bool) for m in model_layers.modules()):
        with pytest.raises(InputError, match="no attention layer with an is_causal switch"):
            load_llm(LLMConfig(model=str(folder), bidirectional=True))
    else:  # BERT's layers carry the flag (already false): reading it bidirectionally changes nothing
        tok, model = load_llm(LLMConfig(model=str(folder), bidirectional=True))
        assert torch.allclose(first_state(model, tok, "abc"), first_state(model_layers, tok, "abc"))


def test_the_llm2vec_preset_is_the_authors_loading():
    cfg = load_run_config("ml100k-sasrec-smollm2", ["llm=llm2vec-llama3-8b"]).llm
    assert cfg.bidirectional and cfg.pooling == "mean"
    assert cfg.model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert cfg.adapters == ["McGill-NLP/LLM2Vec-Meta-Llama-3-8B-Instruct-mntp",
                            "McGill-NLP/LLM2Vec-Meta-Llama-3-8B-Instruct-mntp-supervised"]
    assert cfg.text_format.startswith("<|start_header_id|>user<|end_header_id|>") and "{text}" in cfg.text_format


def test_a_text_format_without_its_placeholder_is_refused():
    with pytest.raises(InputError, match="llm.text_format"):
        load_run_config("demo", ["llm.text_format=no placeholder"])
