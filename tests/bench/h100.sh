#!/bin/sh
# h100.sh — lmbatch on the GPU machine, in one call: GPU tests, lmbatch's throughput on the Llama-2-7B shape
# (random fp16 weights, EOS ignored), and HF transformers on the same shapes (parity and `generate` speed).
#
# Here (development machine):  make CUDA=1 && sh tests/bench/carry.sh      (fills .devcarry/)
# There, from the repository root, carrying .devicekit, build and .devcarry:
#     sh tests/bench/h100.sh [check] [bench] [hf]      (default: all three)
# Prints a table last; JSON lines of every figure go to $OUT/results.jsonl (or /tmp/lmb-results.jsonl).
set -u
MODES=${*:-check bench hf}
R=${OUT:-/tmp}/results.jsonl
LOG=${OUT:-/tmp}/h100.log
: >"$R"
sh .devicekit/on-device.sh true 2>/dev/null # puts the kit's libraries the image lacks in /tmp/kitlib
export LD_LIBRARY_PATH=/tmp/kitlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
run() { "$@"; }
lmb() { run build/lmbatch "$@"; }
export LMB_TEST_SHARED=$PWD/.devcarry/shared
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader | tee -a "$LOG"

for m in $MODES; do case $m in
check)
    for t in build/tests/gpu/test_*; do
        case $t in *.d) continue ;; esac
        echo "== $t"
        if run "$t" --jobs=1 >>"$LOG" 2>&1; then s=pass; else s=FAIL; fi
        tail -n 1 "$LOG"
        echo "{\"test\": \"$(basename "$t")\", \"status\": \"$s\"}" >>"$R"
    done
    grep -E "FAIL|\[----\].*(Assertion|error)" "$LOG" | head -n 20
    m=.devcarry/shared/models/tiny-qwen2
    if [ -d "$m" ]; then
        printf '{"id": 1, "prompt": "Once upon a time", "max_tokens": 48, "temperature": 0}\n{"id": 2, "prompt": "The cat", "max_tokens": 48, "temperature": 0}\n' >/tmp/p.jsonl
        lmb run --quiet --model "$m" --input /tmp/p.jsonl --output /tmp/cpu.jsonl --backend cpu
        lmb run --quiet --model "$m" --input /tmp/p.jsonl --output /tmp/gpu.jsonl --backend cuda
        if cmp -s /tmp/cpu.jsonl /tmp/gpu.jsonl; then s=same; else s=DIFFERENT; diff /tmp/cpu.jsonl /tmp/gpu.jsonl; fi
        echo "{\"test\": \"run tiny-qwen2 cpu vs cuda\", \"status\": \"$s\"}" >>"$R"
    fi
    ;;
awq)
    # W4A16 (AWQ layout, group 128, random weights) against fp16 on the same shapes
    B="bench --random-weights llama2-7b --backend cuda --ignore-eos --json"
    lmb $B --dtype awq --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1 | sed 's/^{/{"case": "W4A16 bs1 128->256", /' | tee -a "$R"
    lmb $B --dtype awq --num-prompts 128 --input-len 128 --output-len 128 --max-seqs 128 | sed 's/^{/{"case": "W4A16 bs128 128->128", /' | tee -a "$R"
    lmb $B --dtype awq --num-prompts 1000 --input-len 512 --output-len 256 --max-batch-tokens 8192 |
        sed 's/^{/{"case": "W4A16 offline 1000x(512->256)", /' | tee -a "$R"
    ;;
ab)
    # the versions side by side: cuBLAS default algorithms vs timed cuBLASLt ones, at bs128
    B="bench --random-weights llama2-7b --backend cuda --ignore-eos --json"
    LMB_NO_GEMM_TUNE=1 lmb $B --num-prompts 128 --input-len 128 --output-len 128 --max-seqs 128 |
        sed 's/^{/{"case": "bs128 128->128, untimed cuBLASLt", /' | tee -a "$R"
    ;;
bench1)
    B="bench --random-weights llama2-7b --backend cuda --ignore-eos --json"
    lmb $B --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1 | sed 's/^{/{"case": "bs1 128->256", /' | tee -a "$R"
    lmb $B --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1 --batch-invariant |
        sed 's/^{/{"case": "bs1 128->256, --batch-invariant", /' | tee -a "$R"
    ;;
bench)
    B="bench --random-weights llama2-7b --backend cuda --ignore-eos --json"
    lmb $B --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1 | sed 's/^{/{"case": "bs1 128->256", /' | tee -a "$R"
    lmb $B --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1 --batch-invariant |
        sed 's/^{/{"case": "bs1 128->256, --batch-invariant", /' | tee -a "$R"
    lmb $B --num-prompts 128 --input-len 128 --output-len 128 --max-seqs 128 | sed 's/^{/{"case": "bs128 128->128", /' | tee -a "$R"
    lmb $B --num-prompts 1000 --input-len 512 --output-len 256 --max-batch-tokens 8192 | sed 's/^{/{"case": "offline 1000x(512->256)", /' | tee -a "$R"
    ;;
prof)
    # where the time goes (LMB_PROFILE=1: per-operation events, graphs off), and A/B of the kernel versions
    B="bench --random-weights llama2-7b --backend cuda --ignore-eos --json"
    for args in "--num-prompts 128 --input-len 128 --output-len 128 --max-seqs 128" \
        "--num-prompts 1 --input-len 128 --output-len 128 --max-seqs 1"; do
        LMB_PROFILE=1 lmb $B $args 2>&1 | grep -v '^{' | grep -A 16 'decode-only' | tee -a "$LOG"
    done
    LMB_NO_GEMV=1 lmb $B --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1 |
        sed 's/^{/{"case": "bs1 128->256, cuBLAS GEMV", /' | tee -a "$R"
    ;;
hf)
    D=/tmp/llama2-7b-random
    [ -f "$D/config.json" ] || python3 tests/bench/hf_make_model.py "$D" 2>&1 | tail -n 2
    python3 tests/bench/hf_parity.py prompts "$D" /tmp/ids.jsonl
    lmb score --quiet --model "$D" --backend cuda --input /tmp/ids.jsonl --output /tmp/lmb-logits.safetensors
    python3 tests/bench/hf_parity.py compare "$D" /tmp/ids.jsonl /tmp/lmb-logits.safetensors 2>>"$LOG" |
        sed 's/^{/{"case": "parity vs HF, 8x256 teacher-forced", /' | tee -a "$R"
    lmb bench --model "$D" --backend cuda --ignore-eos --json --num-prompts 128 --input-len 128 --output-len 128 \
        --max-seqs 128 | sed 's/^{/{"case": "bs128 128->128 (saved model)", /' | tee -a "$R"
    python3 tests/bench/hf_generate.py "$D" 1 128 128 2>>"$LOG" | sed 's/^{/{"case": "HF bs1 128->128", /' | tee -a "$R"
    python3 tests/bench/hf_generate.py "$D" 128 128 128 2>>"$LOG" | sed 's/^{/{"case": "HF bs128 128->128", /' | tee -a "$R"
    ;;
esac; done

echo
echo "---- summary ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)) ----"
python3 tests/bench/summary.py "$R"
