#!/bin/sh
# w4kv.sh — one GPU-machine call for issues 5 and 6 after a kernel change: the GPU tests, W4A16 and fp16 decode
# speed (Llama-2-7B shape), long-context decode with fp16 / int8 KV, and the KV int4 / offline-scale perplexities
# (quality.sh measures the rest of the tables).  Carry .devicekit, build (or a pack of it) and .devcarry.
set -u
export LMB_TEST_SHARED=${LMB_TEST_SHARED:-$PWD/.devcarry/shared}
sh .devicekit/on-device.sh true >/dev/null 2>&1
export LD_LIBRARY_PATH=/tmp/kitlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
O=${OUT:-/tmp}
Q=/tmp/lmb-w4kv
M=$LMB_TEST_SHARED/models/pycoder-22M
T=$LMB_TEST_SHARED/data/pycode.valid.txt.gz
mkdir -p $Q
( # CPU, in the background: offline KV scales, then AWQ g64 without the clipping search
    zcat $T | tail -c 400000 | tail -n +2 >$Q/calib.txt
    build/lmbatch quantize kv --quiet --model $M --calib $Q/calib.txt --samples 16 --seqlen 512 --out $Q/kv.json --threads 12
    build/lmbatch quantize kv --quiet --model $M --calib $Q/calib.txt --samples 16 --seqlen 512 --out $Q/kv-sym.json \
        --kv-sym --threads 12
    touch $Q/kvdone
    build/lmbatch quantize awq --quiet --model $M --calib $Q/calib.txt --calib-samples 16 --calib-seqlen 512 \
        --group-size 64 --no-clip --out $Q/awq-g64-noclip --threads 12
    touch $Q/done
) >$O/quant.log 2>&1 &
sh tests/bench/h100.sh check >$O/check.txt 2>&1
tail -n 10 $O/check.txt
B="build/lmbatch bench --random-weights llama2-7b --backend cuda --ignore-eos --json"
R=$O/w4kv.jsonl
for d in awq fp16; do
    $B --dtype $d --num-prompts 3 --input-len 128 --output-len 256 --max-seqs 1 | sed "s/^{/{\"case\": \"$d bs1 128->256\", /" >>$R
done
$B --dtype awq --num-prompts 128 --input-len 128 --output-len 128 --max-seqs 128 |
    sed 's/^{/{"case": "awq bs128 128->128", /' >>$R
KV_PROFILE=0 sh tests/bench/kv.sh speed >$O/kvspeed.txt 2>&1
tail -n 3 $O/kvspeed.txt
P="build/lmbatch ppl --quiet --json --text $T --max-chars 400000 --backend cuda"
while [ ! -f $Q/kvdone ]; do sleep 2; done
one() { c=$1; shift; $P "$@" | sed "s/^{/{\"case\": \"$c\", /" >>$R; }
one "KV int4 per-token" --model $M --kv int4
one "KV int4 offline" --model $M --kv int4 --kv-params $Q/kv.json
one "KV int8 offline sym" --model $M --kv int8 --kv-params $Q/kv-sym.json
one "KV int4 offline sym" --model $M --kv int4 --kv-params $Q/kv-sym.json
while [ ! -f $Q/done ]; do sleep 2; done
one "weights AWQ g64 no-clip" --model $Q/awq-g64-noclip
python3 - $R <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "ppl" in r: print(f"{r['case']:<28} ppl {r['ppl']:.4f}")
    else: print(f"{r['case']:<28} {r['output_tok_per_s']:9.1f} out tok/s  weights {r['weight_bytes']/2**30:.2f} GiB")
PY
