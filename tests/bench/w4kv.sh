#!/bin/sh
# w4kv.sh — one GPU-machine call for issues 5 and 6 after a kernel change: the GPU tests, the W4A16 kernel
# timings and W4A16 speed (Llama-2-7B shape: bs1, bs128 with both large-M paths, offline), int8-KV offline, and
# AWQ perplexity against the calibration size (CALIB_SAMPLES x 512 tokens, default 32; quantized on CPU cores
# 4-15 in the background while the GPU runs, then evaluated).  Carry .devicekit and the pack (devpack.sh).
# BENCH (default "bs1 bs128 offline"; also step, early, pdl, embed, pair, wgmma, kvspeed, mma256, large, profile1, ncu, ncu1, gpuquant), AWQ_GROUPS (default "128 64",
# empty: none; QUANT_FLAGS: more `quantize awq` flags; EARLY_REPS: rounds of early's W4A16 runs), TESTS (names between test_ and _cuda; default all; none: no tests) and
# TIMING=0 (no kernel timing table) pick the parts.
set -u
export LMB_TEST_SHARED=${LMB_TEST_SHARED:-$PWD/.devcarry/shared}
sh .devicekit/on-device.sh true >/dev/null 2>&1
export LD_LIBRARY_PATH=/tmp/kitlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
O=${OUT:-/tmp}
Q=/tmp/lmb-w4kv
N=${CALIB_SAMPLES:-32}
M=$LMB_TEST_SHARED/models/pycoder-22M
T=$LMB_TEST_SHARED/data/pycode.valid.txt.gz
R=$O/w4kv.jsonl
: >"$R"
mkdir -p $Q
PIN=
command -v taskset >/dev/null && PIN="taskset -c 4-15"
( # CPU, in the background
    zcat $T | tail -c 400000 | tail -n +2 >$Q/calib.txt
    for g in ${AWQ_GROUPS-128 64}; do
        $PIN build/lmbatch quantize awq --quiet --model $M --calib $Q/calib.txt --calib-samples $N --calib-seqlen 512 \
            --group-size $g --out $Q/awq-g$g-n$N --threads 12 ${QUANT_FLAGS:-} && echo "g$g done at $(date +%T)"
    done
    touch $Q/done
) >$O/quant.log 2>&1 &
G=
command -v taskset >/dev/null && G="taskset -c 0-3"
[ "${TESTS:-}" = none ] || for t in $(if [ -n "${TESTS:-}" ]; then for n in $TESTS; do echo build/tests/gpu/test_${n}_cuda; done
    else echo build/tests/gpu/test_*_cuda; fi); do
    if $G "$t" --jobs=1 --verbose >>$O/check.txt 2>&1; then s=pass; else s=FAIL; fi
    echo "{\"test\": \"$(basename $t)\", \"status\": \"$s\"}" >>"$R"
done
grep -E "Assertion|kv decode attention|Synthesis" $O/check.txt | tail -n 30
[ "${TIMING:-1}" = 0 ] || LMB_W4A16_TIMING=1 $G build/tests/gpu/test_w4a16_cuda --filter 'w4a16_cuda/timing' --jobs 1 --verbose 2>&1 |
    grep -E "^(\[----\] )?([0-9]+x[0-9]+|N x K)" | sed 's/^\[----\] //' | tee "$O/timing.txt"
B="$G build/lmbatch bench --random-weights llama2-7b --backend cuda --ignore-eos --json"
one() { c=$1; shift; "$@" | sed "s/^{/{\"case\": \"$c\", /" >>"$R"; tail -n 1 "$R" | cut -c 1-160; }
for b in ${BENCH-bs1 bs128 offline}; do case $b in
bs1)
    one "W4A16 bs1 128->256" $B --dtype awq --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1
    one "fp16 bs1 128->256" $B --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1
    ;;
step)
    # bs1 with the decode step kernel (LMB_W4_STEP=auto), without it, with its knobs and its phase trace; fp16
    A="--dtype awq --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1"
    F="--num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1"
    S="env LMB_W4_STEP=auto"
    one "W4A16 bs1 128->256, step kernel (trace)" $S LMB_W4_STEP_TRACE=1 $B $A
    one "W4A16 bs1 128->256, separate kernels" $B $A
    one "W4A16 bs1, step, LMB_W4_STEP_RP8=1" $S LMB_W4_STEP_RP8=1 $B $A
    one "W4A16 bs1, step, LMB_W4_STEP_RING_KB=96" $S LMB_W4_STEP_RING_KB=96 $B $A
    one "fp16 bs1 128->256" $B $F
    one "W4A16 bs1 128->256, step kernel" $S $B $A
    ;;
early)
    # bs1: this build; the build before (.devold/lmbatch, packed by `devpack.sh .devold` when present); fp16; then
    # both with decode attention's splits merged by a separate kernel (LMB_ATTN_MERGE=kernel) instead of the last
    # split CTA
    A="--dtype awq --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1"
    F="--num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1"
    for i in $(seq ${EARLY_REPS:-2}); do
        one "W4A16 bs1 128->256" $B $A
        [ -x .devold/lmbatch ] && one "W4A16 bs1 128->256, .devold build" $G .devold/lmbatch bench \
            --random-weights llama2-7b --backend cuda --ignore-eos --json $A
    done
    one "fp16 bs1 128->256" $B $F
    one "W4A16 bs1 128->256, LMB_ATTN_MERGE=kernel" env LMB_ATTN_MERGE=kernel $B $A
    one "fp16 bs1 128->256, LMB_ATTN_MERGE=kernel" env LMB_ATTN_MERGE=kernel $B $F
    ;;
pdl)
    # the W4A16 gemv without programmatic dependent launch (LMB_PDL=0), and the embedding table on the GPU
    # instead of host memory
    one "W4A16 bs1 128->256, LMB_PDL=0" env LMB_PDL=0 $B --dtype awq --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1
    one "W4A16 bs1 128->256, --embedding gpu" $B --dtype awq --embedding gpu --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1
    ;;
pair | embed)
    # offline W4A16 against fp16, one run each (the figures of record); embed: also W4A16 with the embedding table
    # on the GPU instead of host memory (the AWQ default)
    O1="--num-prompts 1000 --input-len 512 --output-len 256 --max-batch-tokens 8192"
    one "W4A16 offline 1000x(512->256)" $B --dtype awq $O1
    [ $b = embed ] && one "W4A16 offline 1000x(512->256), --embedding gpu" $B --dtype awq --embedding gpu $O1
    one "fp16 offline 1000x(512->256)" $B $O1
    ;;
wgmma)
    # the wgmma kernel up to each M of WG_MAX (LMB_W4A16_WGMMA_MAX_M; default "2048 512": the backend's default,
    # then the bound of v12's runs); off (LMB_W4A16_WGMMA=0: WMMA to M 128, dequantize + cuBLAS above) with
    # WG_BASE=1; fp16 offline; W4A16 at bs128 (fp16 at bs128 with WG_BASE=1)
    O1="--num-prompts 1000 --input-len 512 --output-len 256 --max-batch-tokens 8192"
    B1="--num-prompts 128 --input-len 128 --output-len 128 --max-seqs 128"
    one "fp16 offline 1000x(512->256)" $B $O1
    for mx in ${WG_MAX:-2048 512}; do
        one "W4A16 offline 1000x(512->256), wgmma to M $mx" env LMB_W4A16_WGMMA_MAX_M=$mx $B --dtype awq $O1
    done
    [ "${WG_BASE:-0}" = 1 ] && one "W4A16 offline 1000x(512->256), wgmma off" env LMB_W4A16_WGMMA=0 $B --dtype awq $O1
    one "W4A16 bs128 128->128" $B --dtype awq $B1
    [ "${WG_BASE:-0}" = 1 ] && one "W4A16 bs128 128->128, wgmma off" env LMB_W4A16_WGMMA=0 $B --dtype awq $B1
    [ "${WG_BASE:-0}" = 1 ] && one "fp16 bs128 128->128" $B $B1
    ;;
kvspeed)
    KV_PROFILE=0 KV_CASES="fp16 int8 int8:LMB_ATTN_SPLIT=256" sh tests/bench/kv.sh speed 2>&1 | tail -n 3
    ;;
mma256)
    # the tensor-core kernel up to M = 256 (LMB_W4A16_MMA_MAX_M) instead of the dequant pipe above M = 128
    one "W4A16 bs128 128->128, mma to M 256" env LMB_W4A16_MMA_MAX_M=256 $B --dtype awq --num-prompts 128 \
        --input-len 128 --output-len 128 --max-seqs 128
    one "W4A16 offline 1000x(512->256), mma to M 256" env LMB_W4A16_MMA_MAX_M=256 $B --dtype awq --num-prompts 1000 \
        --input-len 512 --output-len 256 --max-batch-tokens 8192
    ;;
bs128)
    one "W4A16 bs128 128->128" $B --dtype awq --num-prompts 128 --input-len 128 --output-len 128 --max-seqs 128
    one "W4A16 bs128 128->128, mma to M 256" env LMB_W4A16_MMA_MAX_M=256 $B --dtype awq --num-prompts 128 \
        --input-len 128 --output-len 128 --max-seqs 128
    ;;
large)
    # the large-M paths end to end without wgmma (as on GPUs other than Hopper): the tensor-core kernel to M 128,
    # dequantize + cuBLAS above
    O1="--num-prompts 1000 --input-len 512 --output-len 256 --max-batch-tokens 8192"
    one "W4A16 offline 1000x(512->256), wgmma off" env LMB_W4A16_WGMMA=0 $B --dtype awq $O1
    one "fp16 offline 1000x(512->256)" $B $O1
    one "W4A16 offline, wgmma off, dequant in 24 MB runs" env LMB_W4A16_WGMMA=0 LMB_W4A16_SCRATCH_MB=24 $B --dtype awq $O1
    ;;
ncu)
    # hardware counters of the tensor-core kernel on gate/up (11008 x 4096) at M = 256: the timing test's
    # 1001st mma launch (12 M x 50 launches on the first shape, then 8 M x 50)
    # NCU_K, NCU_SKIP: another kernel and launch; NCU_ONLY=N,K,M times that row alone (LMB_W4A16_TIMING_ONLY),
    # e.g. NCU_K=wgmma_kernel NCU_ONLY=4096,4096,192 NCU_SKIP=5 (the launcher's choice; 55: the other tile; 105:
    # one CTA a tile; 155: stream-K over one CTA an SM)
    LMB_W4A16_TIMING_ONLY=${NCU_ONLY:-} LMB_W4A16_TIMING=1 ncu --clock-control none -k regex:${NCU_K:-mma_kernel} --launch-skip ${NCU_SKIP:-1000} --launch-count 1 \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats \
        --section MemoryWorkloadAnalysis \
        build/tests/gpu/test_w4a16_cuda --filter 'w4a16_cuda/timing' --jobs 1 2>&1 | grep -vE "^\[|^==PROF==|^ *$" |
        tee "$O/ncu.txt" | grep -E "Throughput|Stall|Issue|Warp Cycles|Bank|Duration|Pipe|Occupancy" | head -n 40
    ;;
ncu1)
    # each kernel's duration in bs1 decode (graph replay, kernels timed one by one, caches left warm): W4A16
    # Llama-2-7B, 128 -> 64 tokens, the first 1000 launches (warm-up and prefill) skipped
    ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --print-summary per-kernel \
        --launch-skip 1000 --launch-count 1500 build/lmbatch bench --random-weights llama2-7b --backend cuda \
        --dtype awq --num-prompts 1 --input-len 128 --output-len 64 --max-seqs 1 2>&1 | tee "$O/ncu1.txt" |
        grep -E "^  [a-zA-Z_].*\(|gpu__time_duration|Invocations" | head -n 80
    ;;
profile1)
    LMB_PROFILE=1 $B --dtype awq --num-prompts 2 --input-len 128 --output-len 256 --max-seqs 1 2>&1 |
        grep -A 16 'decode-only' | grep -v '^{'
    ;;
gpuquant)
    # the quantize stage on the GPU (TF32): pycoder at the CPU runs' calibration (evaluated below with them),
    # then a Llama-2-7B-shaped model (random weights, 2 layers) at AutoAWQ's 128 x 512 and LMDeploy's 128 x 2048
    while [ ! -s $Q/calib.txt ]; do sleep 1; done
    for g in ${AWQ_GROUPS-128 64}; do
        $G build/lmbatch quantize awq --backend cuda --model $M --calib $Q/calib.txt --calib-samples $N \
            --calib-seqlen 512 --group-size $g --out $Q/gpu-g$g-n$N ${QUANT_FLAGS:-} 2>&1 | tail -n 2
    done
    for sl in 512 2048; do Q7_LAYERS=2 Q7_SEQLEN=$sl sh tests/bench/quant7b.sh 2>&1 | grep '^quantize'; done
    ;;
offline)
    one "W4A16 offline 1000x(512->256)" $B --dtype awq --num-prompts 1000 --input-len 512 --output-len 256 \
        --max-batch-tokens 8192
    one "W4A16 + KV int8 offline 1000x(512->256)" $B --dtype awq --kv int8 --num-prompts 1000 --input-len 512 \
        --output-len 256 --max-batch-tokens 8192
    ;;
esac; done
P="build/lmbatch ppl --quiet --json --text $T --max-chars 400000 --backend cuda"
i=0
while [ ! -f $Q/done ] && [ $i -lt ${QUANT_WAIT:-240} ]; do sleep 2; i=$((i + 2)); done
cat $O/quant.log
for g in ${AWQ_GROUPS-128 64}; do
    [ -f $Q/awq-g$g-n$N/config.json ] && one "weights AWQ g$g calib ${N}x512 ${QUANT_FLAGS:-}" $P --model $Q/awq-g$g-n$N
    [ -f $Q/gpu-g$g-n$N/config.json ] && one "weights AWQ g$g calib ${N}x512, quantized on the GPU" $P --model $Q/gpu-g$g-n$N
done
echo "---- summary ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)) ----"
python3 tests/bench/summary.py $R
