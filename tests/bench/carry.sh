#!/bin/sh
# carry.sh — fills .devcarry/ (git-ignored) with what the GPU machine needs besides build/ and .devicekit/:
# the small models of ../shared the GPU tests compare on (the GPU machine has no ../shared).  Keep the carried
# total under 64 MiB: stories260K and tiny-qwen2 (real and bias-carrying) are enough there.
set -eu
S=${LMB_TEST_SHARED:-../shared}
rm -rf .devcarry && mkdir -p .devcarry/shared/models
mkdir -p .devcarry/shared/reference
for m in stories260K tiny-qwen2; do
    [ -d "$S/models/$m" ] && cp -r "$S/models/$m" .devcarry/shared/models/
    cp "$S/reference/$m.greedy.json" .devcarry/shared/reference/
done
du -sh .devcarry build .devicekit
