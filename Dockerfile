# syntax=docker/dockerfile:1
# Suanli's one image: the operator (`suanli run`) and the node agent (`suanli agent`).
#
#   docker build -t registry.example.com/suanli/suanli:0.1.0 .
#
# The build stage compiles kernels/ (the device probe and throughput benches) through the package's own
# build, `pip wheel .` (scikit-build-core drives CMake), with every backend the chart claims: CUDA
# (SASS for sm_80 and sm_90 plus PTX, cudart linked statically, so only the host's libcuda.so.1 is
# needed: NVIDIA's container toolkit injects it), HIP (Debian's hipcc: gfx906 only, its clang 15 does
# not know Hygon's gfx926/gfx928; build with DTK's hipcc for K100 cards, kernels/README.md) and
# Ascend (ACL is dlopen()ed at run time: nothing to compile). The runtime stage installs the wheels
# offline onto a slim Python and runs as a fixed non-root UID. No compiler, no build tree and no pip
# cache reach the final image. Vendor management libraries (NVML, DCMI, ROCm SMI) and runtimes
# (libcuda, ACL, HIP) come from the host at run time (the chart mounts or injects them).
#
# tests/kernels/test_dockerfile_build.py runs this stage's build commands outside a container engine.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The base image tag pins the Debian release; exact package versions are not pinned because Debian
# drops superseded versions from its archive, which would break rebuilds. hipcc, libamdhip64-dev and
# rocm-device-libs: the HIP compiler, headers and device libraries (Debian's ROCm packages).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ libc6-dev cmake make \
      hipcc libamdhip64-dev rocm-device-libs \
 && rm -rf /var/lib/apt/lists/*
# nvcc from PyPI (no NVIDIA apt repository): CUDA 13, whose runtime needs an R580 or newer driver on
# the node (older drivers: the bench reports "CUDA driver version is insufficient", health untouched).
ARG CUDA_VERSION=13.5.37
RUN pip install --no-cache-dir nvidia-cuda-nvcc==${CUDA_VERSION} nvidia-cuda-runtime==${CUDA_VERSION} \
      nvidia-cuda-crt==${CUDA_VERSION}
WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps the rest of the tree out of the context).
COPY pyproject.toml README.md ./
COPY kernels/ kernels/
COPY operator/ operator/
# ON, not AUTO: an image without a backend the chart relies on must fail to build, not ship silently.
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
      -Ccmake.define.SUANLI_CUDA=ON -Ccmake.define.SUANLI_HIP=ON

FROM ${PYTHON_IMAGE}
# libgomp1: the probe's throughput kernels use OpenMP. Unpinned for the same reason as above.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 suanli \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin suanli
# Offline install of the wheel just built (its dependencies from the same folder: versions fixed by
# the build stage's resolution), bind-mounted so the wheels never land in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/suanli-*.whl \
 && suanli --version \
 && python -c "import sys, suanli.probe as p; b = p.build_info()['backends']; sys.exit(b != 'cpu,cuda,hip' and b)"
# Read-only root filesystem in the chart: never try to write .pyc files; log lines unbuffered.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd; matches the chart.
USER 10001:10001
ENTRYPOINT ["suanli"]
CMD ["--help"]
