#!/bin/sh
# Installs the GPU compilers the kernels' compile checks need, on a fresh Debian
# machine as root (CI): nvcc from PyPI (no NVIDIA apt repository needed) and
# Debian's own hipcc. Neither needs a GPU; both only compile.
set -eu

PYTHON=${PYTHON:-python3}

if [ "${SUANLI_SKIP_CUDA:-0}" != 1 ]; then
    # cuobjdump lets the compile check prove sm_80/sm_90 SASS is embedded.
    "$PYTHON" -m pip install --quiet nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-crt nvidia-cuda-cuobjdump
fi

if [ "${SUANLI_SKIP_HIP:-0}" != 1 ]; then
    apt-get update -qq
    # Fails loudly if the packages are gone from the distribution, rather than
    # letting the HIP compile check silently skip.
    apt-cache show hipcc libamdhip64-dev rocm-device-libs >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        hipcc libamdhip64-dev rocm-device-libs >/dev/null
fi

# Where the CMake build looks for nvcc (kernels/CMakeLists.txt does the same search).
"$PYTHON" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("nvidia")
if spec and spec.submodule_search_locations:
    for root in spec.submodule_search_locations:
        for nvcc in pathlib.Path(root).glob("cu*/bin/nvcc"):
            print(f"nvcc: {nvcc}")
PY
command -v hipcc >/dev/null && echo "hipcc: $(command -v hipcc)" || true
