#!/bin/sh
# Emulates kernels/cuda/w4a16.cu, w4a16_wgmma.cu and w4a16_step.cu on the CPU (see cuda_emu.h) and checks them
# against the CPU reference (emu_w4a16.cpp) and against the gemv and a float reference (emu_step.cpp):
#   sh tests/tools/cuda_emu/run_w4a16.sh        (from the repository root; needs g++ >= 12 and CUDA headers)
set -e
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
T=$(mktemp -d /tmp/lmb-emu-XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/kernels/cuda"
cp kernels/kernels_cuda.h kernels/kernels.h kernels/kv_quant.h "$T/kernels/"
# kernel launches (<<<>>> and launch_pdl) become emu::launcher calls; launch results are always 0; WMMA comes from the shim
python3 - "$T" <<'PY'
import re, sys
t = sys.argv[1]
for name, out in (("kernels/cuda/common.cuh", "kernels/cuda/common.cuh"), ("kernels/cuda/w4.cuh", "kernels/cuda/w4.cuh"),
                  ("kernels/cuda/wgmma.cuh", "kernels/cuda/wgmma.cuh"), ("kernels/cuda/w4a16.cu", "kernels/cuda/w4a16.cpp"),
                  ("kernels/cuda/w4a16_wgmma.cu", "kernels/cuda/w4a16_wgmma.cpp"),
                  ("kernels/cuda/w4a16_step.cu", "kernels/cuda/w4a16_step.cpp")):
    s = open(name).read()
    s = s.replace("#include <mma.h>", "")
    s = s.replace("((int)cudaGetLastError())", "0")
    # launch_pdl (cudaLaunchKernelEx with the PDL attribute) becomes a plain emulated launch
    s = re.sub(r"(cudaError_t launch_pdl\(.*?Args\.\.\. args\) \{).*?\n\}\n",
               "\\1\n    emu::launcher{grid, block}(k)(static_cast<KArgs>(args)...);\n    return cudaSuccess;\n}\n", s, flags=re.S)
    s = s.replace("bool pdl_enabled();", "inline bool pdl_enabled() { return false; }")
    def launch(m):  # kernel<<<grid, block, ...>>>( -> emu::launcher{dim3(grid), dim3(block)}(kernel)(
        args, depth, cur = [], 0, ""
        for ch in m.group(2):
            depth += ch in "(<" and 1 or 0
            depth -= ch in ")>" and 1 or 0
            if ch == "," and depth == 0:
                args.append(cur.strip()); cur = ""
            else:
                cur += ch
        args.append(cur.strip())
        return f"emu::launcher{{dim3({args[0]}), dim3({args[1]})}}({m.group(1)})("
    s = re.sub(r"(\w+(?:<[^<>;()]*>)?)<<<(.*?)>>>\(", launch, s, flags=re.S)
    open(f"{t}/{out}", "w").write(s)
PY
CXX="g++ -std=c++20 -O1 -pthread -I$CUDA_HOME/include -Wno-attributes"
$CXX -include tests/tools/cuda_emu/cuda_emu.h -c "$T/kernels/cuda/w4a16.cpp" -o "$T/gpu_w4a16.o"
$CXX -include tests/tools/cuda_emu/cuda_emu.h -c "$T/kernels/cuda/w4a16_wgmma.cpp" -o "$T/gpu_w4a16_wgmma.o"
$CXX -include tests/tools/cuda_emu/cuda_emu.h -c "$T/kernels/cuda/w4a16_step.cpp" -o "$T/step.o"
$CXX -Wno-deprecated -c tests/tools/cuda_emu/emu_w4a16.cpp -o "$T/emu.o"
$CXX -Wno-deprecated -c tests/tools/cuda_emu/emu_step.cpp -o "$T/emu_step.o"
for f in kernels/cpu/w4a16.c kernels/cpu/matmul.c engine/tensor.c; do
    gcc -std=c11 -O2 -D_GNU_SOURCE -c "$f" -o "$T/cpu_$(basename "$f" .c).o"
done
g++ -pthread "$T/emu_step.o" "$T/step.o" "$T/gpu_w4a16.o" "$T"/cpu_*.o -o "$T/emu_step" -lm
"$T/emu_step"
[ -n "${STEP_ONLY:-}" ] && exit 0
g++ -pthread "$T/emu.o" "$T/gpu_w4a16.o" "$T/gpu_w4a16_wgmma.o" "$T"/cpu_*.o -o "$T/emu" -lm
"$T/emu"
