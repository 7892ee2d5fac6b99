// What a CUDA build of LibTorch generates here (Debian's CPU-only package ships c10/cuda's
// headers but not this one): for tests/cuda_link_check.cpp only.
#pragma once
#define C10_CUDA_BUILD_SHARED_LIBS
