# qdm images, multi-stage, from Debian 12 packages.
#   docker build --target scheduler -t qdm-scheduler .
#   docker build --target worker    -t qdm-worker .        (CPU worker)
#   docker build --target sampler   -t qdm-sampler .       (sampling only, no LibTorch)
#   docker build --target gateway   -t qdm-gateway .       (HTTP/JSON in front of the scheduler)
#   docker build --target worker-cuda --build-arg CUDA_IMAGE=nvidia/cuda:13.0.0-devel-ubuntu24.04 \
#                --build-arg LIBTORCH_URL_OR_DIR=... -t qdm-worker-cuda .   (GPU worker, see README)
# Base images (ARGs before the first FROM are the only ones a FROM line can use).
ARG DEBIAN=debian:12-slim
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-devel-ubuntu24.04

# --- build: everything, tests included -------------------------------------------------------
FROM ${DEBIAN} AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build ccache git ca-certificates \
      libtorch-dev libopenblas0-pthread libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev \
      prometheus-cpp-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev \
      nlohmann-json3-dev libcli11-dev libsqlite3-dev libpq-dev pkg-config libpng-dev zlib1g-dev libssl-dev libicu-dev libdnnl-dev \
      golang-go golang-github-grpc-ecosystem-grpc-gateway-dev golang-grpc-gateway protoc-gen-go-1-3 golang-google-grpc-dev \
      golang-google-genproto-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQDM_BUILD_TESTS=OFF \
    && cmake --build build --target qdm qdm-scheduler qdm-worker qdm-sampler qdm-gateway

# --- scheduler: torch-free runtime -------------------------------------------------------------
FROM ${DEBIAN} AS scheduler
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libprometheus-cpp-pull1.0 libprometheus-cpp-core1.0 libspdlog1.10 \
      libfmt9 libsqlite3-0 libpq5 libpng16-16 libicu72 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/qdm qdm && mkdir -p /var/lib/qdm && chown qdm /var/lib/qdm
COPY --from=build /src/build/bin/qdm-scheduler /usr/local/bin/
COPY --chown=qdm models /opt/qdm/models
USER 10001
ENV QDM_DATA=/var/lib/qdm QDM_MODEL_ROOT=/opt/qdm/models QDM_LISTEN=0.0.0.0:50051 QDM_METRICS=0.0.0.0:9464
EXPOSE 50051 9464
ENTRYPOINT ["qdm-scheduler"]

# --- CPU worker: LibTorch from Debian ----------------------------------------------------------
FROM ${DEBIAN} AS worker
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libtorch1.13 libopenblas0-pthread libdnnl2 libgrpc++1.51 libgrpc29 libprotobuf32 libprometheus-cpp-pull1.0 \
      libprometheus-cpp-core1.0 libspdlog1.10 libfmt9 libpng16-16 libicu72 libssl3 dataset-fashion-mnist ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/qdm qdm && mkdir -p /var/lib/qdm && chown qdm /var/lib/qdm
COPY --from=build /src/build/bin/qdm-worker /src/build/bin/qdm /usr/local/bin/
COPY --chown=qdm models/fmnist-classifier /opt/qdm/models/fmnist-classifier
USER 10001
ENV QDM_SCHEDULER=qdm-scheduler:50051 QDM_LISTEN=0.0.0.0:50052 QDM_METRICS=0.0.0.0:9465 \
    QDM_CACHE_DIR=/var/lib/qdm QDM_CLASSIFIER=/opt/qdm/models/fmnist-classifier
EXPOSE 50052 9465
ENTRYPOINT ["qdm-worker"]

# --- sampler: sampling only, on the execution plan, without LibTorch --------------------------------
# Serves fp32 models and artifacts on the CPU kernels (oneDNN for fp32 convolutions); registers
# as sampling-only, so the scheduler never leases it a quantize job. Scale it for image traffic.
FROM ${DEBIAN} AS sampler
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libdnnl2 libgrpc++1.51 libgrpc29 libprotobuf32 libprometheus-cpp-pull1.0 libprometheus-cpp-core1.0 \
      libspdlog1.10 libfmt9 libpng16-16 libicu72 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/qdm qdm && mkdir -p /var/lib/qdm && chown qdm /var/lib/qdm
COPY --from=build /src/build/bin/qdm-sampler /usr/local/bin/
USER 10001
ENV QDM_SCHEDULER=qdm-scheduler:50051 QDM_LISTEN=0.0.0.0:50053 QDM_METRICS=0.0.0.0:9466 QDM_CACHE_DIR=/var/lib/qdm
EXPOSE 50053 9466
ENTRYPOINT ["qdm-sampler"]

# --- gateway: the HTTP/JSON API (Go; grpc-gateway from Debian) --------------------------------------
# In front of the scheduler: the services' google.api.http paths and OpenAI's
# POST /v1/images/generations. Flags only (no QDM_* variables): the chart passes them.
FROM ${DEBIAN} AS gateway
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/qdm qdm
COPY --from=build /src/build/bin/qdm-gateway /usr/local/bin/
USER 10001
EXPOSE 8080
ENTRYPOINT ["qdm-gateway"]
CMD ["--listen=0.0.0.0:8080", "--scheduler=qdm-scheduler:50051"]

# --- CUDA worker: the same worker on a CUDA base with a CUDA LibTorch ------------------------------
# Debian's LibTorch is CPU-only. Build on a CUDA base image with a CUDA LibTorch unpacked into
# /opt/libtorch (pass it in the build context as libtorch/, e.g. pytorch.org's cxx11-abi zip built
# for the base image's CUDA version: cu130 for the default CUDA_IMAGE). CMake then finds a LibTorch
# with CUDA and links the CUDA GEMM into the engine: fp32 models and the simulation run on the
# GPU through LibTorch, integer artifacts through the dp4a GEMM (engine/runtime/tensor_int_layer.h).
FROM ${CUDA_IMAGE} AS worker-cuda
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev prometheus-cpp-dev \
      libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev libsqlite3-dev libpq-dev pkg-config libpng-dev zlib1g-dev \
      libssl-dev libicu-dev golang-github-grpc-ecosystem-grpc-gateway-dev \
    && rm -rf /var/lib/apt/lists/*
COPY libtorch /opt/libtorch
WORKDIR /src
COPY . .
RUN cmake -S . -B build -G Ninja -DQDM_BUILD_TESTS=OFF -DQDM_CUDA=ON -DCMAKE_PREFIX_PATH=/opt/libtorch \
    && cmake --build build --target qdm-worker && cp build/bin/qdm-worker /usr/local/bin/ \
    && mkdir -p /opt/qdm/models && cp -r models/fmnist-classifier /opt/qdm/models/ && rm -rf /src \
    && useradd --system --uid 10001 --home /var/lib/qdm qdm && mkdir -p /var/lib/qdm && chown qdm /var/lib/qdm
USER 10001
ENV QDM_SCHEDULER=qdm-scheduler:50051 QDM_LISTEN=0.0.0.0:50052 QDM_METRICS=0.0.0.0:9465 \
    QDM_CACHE_DIR=/var/lib/qdm QDM_CLASSIFIER=/opt/qdm/models/fmnist-classifier \
    QDM_DEVICE=cuda
EXPOSE 50052 9465
ENTRYPOINT ["qdm-worker"]
