#!/bin/sh
# kv.sh — issue 6 (KV cache int8/int4) on the GPU machine, in one call: the KV GPU tests, the measured memory
# table (Llama-2-7B shape, fp16 / int8 / int4 KV), and long-context decode speed with fp16 vs int8 KV.
#
# Here (development machine):  make CUDA=1 && sh tests/bench/carry.sh      (fills .devcarry/)
# There, from the repository root, carrying .devicekit, build and .devcarry:
#     sh tests/bench/kv.sh [check] [memory] [speed] [offline]     (no argument: the first three)
# JSON lines of every figure go to $OUT/kv-results.jsonl (or /tmp); a summary is printed last.
set -u
MODES=${*:-check memory speed}
R=${OUT:-/tmp}/kv-results.jsonl
LOG=${OUT:-/tmp}/kv.log
: >"$R"
sh .devicekit/on-device.sh true 2>/dev/null # puts the kit's libraries the image lacks in /tmp/kitlib
export LD_LIBRARY_PATH=/tmp/kitlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LMB_TEST_SHARED=$PWD/.devcarry/shared
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$LOG"
B="build/lmbatch bench --backend cuda --ignore-eos --json"
# long-context decode: 64 sequences at context ~4096, llama3-8b shape (8 KV heads) so that fp16 KV fits too
# (64 x 4096 x 128 KiB = 32 GiB; Llama-2-7B's fp16 cache holds only ~29 such sequences on 80 GB)
S="--random-weights llama3-8b --num-prompts 64 --max-seqs 64 --input-len 3968 --output-len 128 --max-batch-tokens 8192"

for m in $MODES; do case $m in
check)
    for t in build/tests/gpu/test_kv_quant_cuda build/tests/gpu/test_kv_engine_cuda build/tests/gpu/test_kernels_cuda \
        build/tests/gpu/test_kv_speed_cuda; do
        echo "== $t"
        if "$t" --jobs=1 --verbose >>"$LOG" 2>&1; then s=pass; else s=FAIL; fi
        tail -n 1 "$LOG"
        echo "{\"test\": \"$(basename "$t")\", \"status\": \"$s\"}" >>"$R"
    done
    grep -E "kv decode attention|Assertion|GPU vs fp32" "$LOG" | tail -n 16
    ;;
memory)
    # the engine's own report at start (cudaMemGetInfo after weights and activations; default --cache-fraction 0.9)
    # (seed 003's table: fp16 / KV8 / W4A16 / W4A16+KV8, and int4 KV)
    for c in fp16:fp16 fp16:int8 fp16:int4 awq:fp16 awq:int8 awq:int4; do
        w=${c%:*} kv=${c#*:}
        $B --random-weights llama2-7b --dtype $w --kv $kv --num-prompts 1 --input-len 16 --output-len 4 --no-warmup \
            2>"$LOG.mem" | sed "s/^{/{\"case\": \"memory W-$w KV-$kv\", /" >>"$R"
        grep "^lmbatch:" "$LOG.mem" | sed "s/^/[W-$w KV-$kv] /"
    done
    ;;
speed)
    # with graphs: throughput, and decode ms/step estimated as (seconds - ttft_p99) / (output_len - 1);
    # then (unless KV_PROFILE=0) LMB_PROFILE=1 (graphs off): the decode-only steps and their attention time
    # KV_CASES: KV[:VAR=VALUE] words, e.g. "fp16 int8 int8:LMB_ATTN_EPL=8" (an environment variable for the run)
    for c in ${KV_CASES:-fp16 int8}; do
        kv=${c%%:*} v=
        [ "$kv" = "$c" ] || v=${c#*:}
        env $v $B $S --kv $kv | sed "s/^{/{\"case\": \"decode bs64 ctx4096 llama3-8b $c\", /" | tee -a "$R"
        [ "${KV_PROFILE:-1}" = 1 ] || continue
        env $v LMB_PROFILE=1 $B $S --kv $kv 2>&1 >/dev/null | grep -A 16 "decode-only" | grep -E "decode-only|attn|rope" |
            sed "s/^/[$c] /" | tee -a "$LOG"
    done
    ;;
offline)
    # PERF.md's offline case with int8 KV: twice the tokens in the cache, half the KV bytes per step
    for kv in fp16 int8; do
        $B --random-weights llama2-7b --kv $kv --num-prompts 1000 --input-len 512 --output-len 256 \
            --max-batch-tokens 8192 | sed "s/^{/{\"case\": \"offline 1000x(512->256) $kv\", /" | tee -a "$R"
    done
    ;;
esac; done

echo
echo "---- summary ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)) ----"
python3 tests/bench/summary.py "$R"
