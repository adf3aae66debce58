#!/bin/sh
# quality.sh — the perplexity tables of issues 5 (AWQ W4A16) and 6 (KV int8/int4) on pycoder-22M, the real
# model of ../shared whose widths divide by 128, over the first 400,000 characters of pycode.valid.txt.gz.
#
#     sh tests/bench/quality.sh quantize     makes the quantized folders in $Q (CPU; can run in the background)
#     sh tests/bench/quality.sh ppl          the table (BACKEND=cuda by default; BACKEND=cpu works, slowly)
#     sh tests/bench/quality.sh calib        AWQ g128/g64 with CALIB_SAMPLES x CALIB_SEQLEN tokens, and their ppl
#
# Calibration (AWQ and the offline KV scales): the last 400,000 characters of pycode.valid.txt.gz, which the
# evaluation (its first 400,000) never reads; CALIB_SAMPLES x CALIB_SEQLEN tokens (default 32 x 512).
# On the GPU machine $LMB_TEST_SHARED is .devcarry/shared; JSON lines go to $OUT/quality.jsonl.
set -u
S=${LMB_TEST_SHARED:-../shared}
M=$S/models/pycoder-22M
T=$S/data/pycode.valid.txt.gz
Q=${Q:-/tmp/lmb-quality}
BACKEND=${BACKEND:-cuda}
N=${CALIB_SAMPLES:-32}
L=${CALIB_SEQLEN:-512}
TH=${THREADS:-0}
LMB=${LMB:-build/lmbatch}
R=${OUT:-/tmp}/quality.jsonl
mkdir -p "$Q"
if [ -f .devicekit/on-device.sh ]; then # the GPU machine: the kit's libraries the image lacks
    sh .devicekit/on-device.sh true 2>/dev/null
    export LD_LIBRARY_PATH=/tmp/kitlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

for m in ${*:-quantize ppl}; do case $m in
quantize)
    rm -f "$Q/done"
    zcat "$T" | tail -c 400000 | tail -n +2 >"$Q/calib.txt"
    t0=$(date +%s)
    for g in 128 64; do
        $LMB quantize awq --quiet --method rtn --model "$M" --calib "$Q/calib.txt" --group-size $g --out "$Q/rtn-g$g" --threads $TH
        $LMB quantize awq --quiet --model "$M" --calib "$Q/calib.txt" --calib-samples $N --calib-seqlen $L \
            --group-size $g --out "$Q/awq-g$g" --threads $TH
        echo "quality.sh: g$g quantized ($(($(date +%s) - t0)) s)"
    done
    $LMB quantize kv --quiet --model "$M" --calib "$Q/calib.txt" --samples $N --seqlen $L --out "$Q/kv.json" --threads $TH
    $LMB quantize kv --quiet --model "$M" --calib "$Q/calib.txt" --samples $N --seqlen $L --out "$Q/kv-sym.json" --kv-sym \
        --threads $TH
    echo "quality.sh: quantized in $(($(date +%s) - t0)) s"
    touch "$Q/done"
    ;;
calib)
    # AWQ against the calibration size: CALIB_SAMPLES x CALIB_SEQLEN tokens for groups 128 and 64 (the other
    # quantized folders are not remade), then their perplexity; JSON lines to $R as in ppl
    zcat "$T" | tail -c 400000 | tail -n +2 >"$Q/calib.txt"
    t0=$(date +%s)
    for g in 128 64; do
        $LMB quantize awq --quiet --model "$M" --calib "$Q/calib.txt" --calib-samples $N --calib-seqlen $L \
            --group-size $g --out "$Q/awq-g$g-n$N" --threads $TH
        echo "quality.sh: AWQ g$g with $N x $L tokens ($(($(date +%s) - t0)) s)"
    done
    for g in 128 64; do
        $LMB ppl --quiet --json --text $T --max-chars 400000 --backend $BACKEND --model "$Q/awq-g$g-n$N" |
            sed "s/^{/{\"case\": \"weights AWQ g$g calib ${N}x$L\", /" | tee -a "$R"
    done
    ;;
ppl)
    while [ ! -f "$Q/done" ]; do sleep 5; done
    : >"$R"
    P="ppl --quiet --json --text $T --max-chars 400000 --backend $BACKEND"
    one() { # case-name args...
        c=$1
        shift
        $LMB $P "$@" | sed "s/^{/{\"case\": \"$c\", /" | tee -a "$R"
    }
    one "weights fp16" --model "$M"
    for g in 128 64; do
        one "weights RTN g$g" --model "$Q/rtn-g$g"
        one "weights AWQ g$g" --model "$Q/awq-g$g"
    done
    for kv in int8 int4; do
        one "KV $kv per-token" --model "$M" --kv $kv
        one "KV $kv offline" --model "$M" --kv $kv --kv-params "$Q/kv.json"
        one "KV $kv offline sym" --model "$M" --kv $kv --kv-params "$Q/kv-sym.json"
    done
    one "AWQ g128 + KV int8" --model "$Q/awq-g128" --kv int8
    echo
    echo "---- perplexity, pycoder-22M, pycode.valid first 400,000 chars ($BACKEND) ----"
    python3 tests/bench/summary.py "$R"
    ;;
esac; done
