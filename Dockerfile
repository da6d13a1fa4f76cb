# densetrain on an NVIDIA CUDA development image (Ubuntu 24.04 base, CUDA 13).
#   docker build -t densetrain .
#   docker run --gpus all densetrain build/tests/dense_unit_tests --gtest_filter='Cuda*'
FROM nvidia/cuda:13.0.1-cudnn-devel-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config git ca-certificates \
      libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libhdf5-dev \
      libopenmpi-dev openmpi-bin libgtest-dev libgmock-dev libopenblas-dev \
      nlohmann-json3-dev libutf8proc-dev libbenchmark-dev libnccl-dev \
      python3 python3-numpy python3-h5py python3-matplotlib \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/densetrain
COPY . .
ARG CUDA_ARCHS=90
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDENSE_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS} -DDENSE_NATIVE=OFF \
    && cmake --build build
# The PyTorch-parity tests need the Debian reference (python3-torch); the image runs the rest.
CMD ["build/tests/dense_unit_tests", "--gtest_filter=-*GoldenParity*"]
