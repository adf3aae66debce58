#!/bin/sh
# quant7b.sh — the quantize stage on the GPU at Llama-2-7B's full shape (random weights from transformers, 32
# layers) with AutoAWQ's default calibration (128 x 512 tokens of pycode.valid), then the packed folder
# loaded and run (bs1 128 -> 256).  One GPU-machine call after devpack.sh (carry .devicekit and .devpack).
# Q7_LAYERS (fewer layers), Q7_SAMPLES and Q7_SEQLEN (calibration) change the case.
set -u
export LMB_TEST_SHARED=${LMB_TEST_SHARED:-$PWD/.devcarry/shared}
sh .devicekit/on-device.sh true >/dev/null 2>&1
export LD_LIBRARY_PATH=/tmp/kitlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
D=/tmp/lmb-q7-${Q7_LAYERS:-32}
mkdir -p $D
[ -f $D/fp/config.json ] || python3 tests/bench/hf_make_model.py $D/fp ${Q7_LAYERS:+--layers $Q7_LAYERS} 2>&1 | tail -n 1
cp $LMB_TEST_SHARED/models/pycoder-22M/tokenizer.json $LMB_TEST_SHARED/models/pycoder-22M/tokenizer_config.json $D/fp/
s0=$(date +%s)
build/lmbatch quantize awq --backend cuda --model $D/fp --calib $LMB_TEST_SHARED/data/pycode.valid.txt.gz \
    --calib-samples ${Q7_SAMPLES:-128} --calib-seqlen ${Q7_SEQLEN:-512} --out $D/awq 2>&1 | sed -n '1p;2p;$p'
echo "quantize: $(($(date +%s) - s0)) s wall, including loading"
du -sh $D/fp $D/awq
build/lmbatch bench --model $D/awq --backend cuda --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1 \
    --ignore-eos --json 2>/dev/null | tail -n 1 | cut -c 1-300
