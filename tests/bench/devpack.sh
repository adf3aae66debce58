#!/bin/sh
# devpack.sh — builds (CUDA=1) and packs what a GPU call needs into .devpack/pack.tar.xz (git-ignored; the carry limit is 64 MiB):
# stripped build/lmbatch and build/tests/gpu/* (as .devbuild/, xz shares their common code), .devcarry/ (the
# small models, tests/bench/carry.sh) and any extra paths given.  Carry [".devicekit", ".devpack"]; there:
#     python3 -c "import tarfile; tarfile.open('.devpack/pack.tar.xz').extractall('.')" && rm -rf build && ln -s .devbuild build
set -eu
# `make CUDA=1` alone does not rebuild the GPU test binaries: name them
make CUDA=1 -j2 build/lmbatch $(for f in tests/gpu/test_*.c; do echo build/tests/gpu/$(basename "$f" .c); done) >/dev/null
rm -rf .devbuild .devpack && mkdir -p .devbuild/tests/gpu .devpack
strip -o .devbuild/lmbatch build/lmbatch
for t in build/tests/gpu/test_*; do
    case $t in *.d) continue ;; esac
    strip -o ".devbuild/tests/gpu/$(basename "$t")" "$t"
done
python3 - "$@" <<'PY'
import sys, tarfile, os
with tarfile.open(".devpack/pack.tar.xz", "w:xz", preset=9) as t:
    for p in [".devbuild", ".devcarry"] + sys.argv[1:]:
        if os.path.exists(p): t.add(p)
PY
du -sh .devpack/pack.tar.xz
