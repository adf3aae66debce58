#!/bin/sh
# Runs each Criterion test binary given on the command line; prints one summary line and fails if any failed.
failed=""
for t in "$@"; do
    echo "== $t"
    case "$t" in */gpu/*) nvidia-smi -L >/dev/null 2>&1 || echo "   (no CUDA device here: these GPU tests skip; run them on the GPU machine)" ;; esac
    if ! "$t" --jobs="${LMB_TEST_JOBS:-2}"; then failed="$failed $(basename "$t")"; fi
done
if [ -n "$failed" ]; then
    echo "FAILED:$failed"
    exit 1
fi
echo "all $# test binaries passed"
