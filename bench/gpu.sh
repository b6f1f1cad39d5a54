#!/usr/bin/env bash
# The CUDA check: on a machine with a GPU, run the engine's CUDA path and print timing / memory tables.
#
#     bash bench/gpu.sh            # from the repository root, with the project installed (make setup)
#
# 1. the demo and ml100k-sasrec-smollm2 presets through all three stages, bf16 autocast vs fp32
#    (bench/end_to_end.py: wall time, per-stage seconds, peak RSS and GPU memory, test NDCG@10);
# 2. the LLM embedding stage with a 0.5B model (qwen2.5-0.5b) when its weights are in the Hugging Face cache,
#    else SmolLM2-135M (an offline asset) — bench/embed.py: load time, items/s, bf16 on the GPU.
# Nothing here is needed by the project; it only measures.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "bench/gpu.sh: no CUDA device visible to torch ($("$PY" -c 'import torch; print(torch.__version__)')); nothing to measure." >&2
  exit 2
fi
"$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 {torch.cuda.is_bf16_supported()}, torch {torch.__version__}')"
"$PY" -m padtui assets fetch
for preset in demo ml100k-sasrec-smollm2; do
  for mp in bf16 no; do
    echo; echo "== $preset, train.mixed_precision = $mp"
    "$PY" bench/end_to_end.py --preset "$preset" --set "train.mixed_precision=$mp"
  done
done
echo
if HF_HUB_OFFLINE=1 "$PY" -c "from transformers import AutoConfig; AutoConfig.from_pretrained('Qwen/Qwen2.5-0.5B')" 2>/dev/null; then
  echo "== embedding: qwen2.5-0.5b (from the Hugging Face cache)"
  HF_HUB_OFFLINE=1 "$PY" bench/embed.py --llm qwen2.5-0.5b --device cuda --repeats 2
else
  echo "== embedding: qwen2.5-0.5b is not in the Hugging Face cache (huggingface-cli download Qwen/Qwen2.5-0.5B); SmolLM2-135M instead"
  "$PY" bench/embed.py --llm smollm2-135m --device cuda --repeats 2
fi
