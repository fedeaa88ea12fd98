# syntax=docker/dockerfile:1
# Suanli's one image: the operator (`suanli run`) and the node agent (`suanli agent`).
#
#   docker build -t registry.example.com/suanli/suanli:0.1.0 .
#
# The build stage compiles kernels/ (the device probe) through the package's own build, `pip wheel .`
# (scikit-build-core drives CMake), and collects every dependency as a wheel; the runtime stage installs
# those wheels offline onto a slim Python and runs as a fixed non-root UID. No compiler, no build tree
# and no pip cache reach the final image. GPU throughput backends are built only where nvcc/hipcc are
# found (kernels/README.md); this image carries the CPU backend and loads vendor management libraries
# (NVML, DCMI, ROCm SMI) from the host at run time (the chart mounts them read-only).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The base image tag pins the Debian release; exact package versions are not pinned because Debian
# drops superseded versions from its archive, which would break rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev cmake make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps the rest of the tree out of the context).
COPY pyproject.toml README.md ./
COPY kernels/ kernels/
COPY operator/ operator/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

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
 && suanli --version
# Read-only root filesystem in the chart: never try to write .pyc files; log lines unbuffered.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd; matches the chart.
USER 10001:10001
ENTRYPOINT ["suanli"]
CMD ["--help"]
