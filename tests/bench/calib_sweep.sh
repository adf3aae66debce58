#!/bin/sh
# calib_sweep.sh — AWQ quality against the calibration size, quantized on the GPU (seconds per model):
# pycoder-22M, calibrated on the last 400,000 characters of pycode.valid, evaluated (ppl, GPU) on the first
# 400,000.  SWEEP="GROUP:SAMPLES ..." (default: group 128 and 64 at 32, 64 and 128 x 512 tokens).
set -u
export LMB_TEST_SHARED=${LMB_TEST_SHARED:-$PWD/.devcarry/shared}
sh .devicekit/on-device.sh true >/dev/null 2>&1
export LD_LIBRARY_PATH=/tmp/kitlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
M=$LMB_TEST_SHARED/models/pycoder-22M
T=$LMB_TEST_SHARED/data/pycode.valid.txt.gz
Q=/tmp/lmb-sweep
mkdir -p $Q
zcat $T | tail -c 400000 | tail -n +2 >$Q/calib.txt
for c in ${SWEEP:-128:32 128:64 128:128 64:32 64:64 64:128}; do
    g=${c%:*} n=${c#*:}
    build/lmbatch quantize awq --backend cuda --quiet --model $M --calib $Q/calib.txt --calib-samples $n \
        --calib-seqlen 512 --group-size $g --out $Q/g$g-n$n ${QUANT_FLAGS:-} || continue
    p=$(build/lmbatch ppl --quiet --json --text $T --max-chars 400000 --backend cuda --model $Q/g$g-n$n |
        sed 's/.*"ppl": \([0-9.]*\).*/\1/')
    echo "AWQ g$g ${n}x512 ${QUANT_FLAGS:-}: ppl $p"
done
