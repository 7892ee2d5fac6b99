# find_package(Torch) with the CUDA toolkit this project already enabled (when it did).
#
# A CUDA build of PyTorch 2.x (pip, found through torch.utils.cmake_prefix_path) sets CUDA up
# again inside its own config: the legacy FindCUDA looks for nvcc on PATH / CUDA_TOOLKIT_ROOT_DIR
# (not CMAKE_CUDA_COMPILER) and stops at "Found two conflicting CUDA versions/installs" when
# they differ; it sets CMAKE_CUDA_ARCHITECTURES to OFF and appends its own -gencode flags to
# CMAKE_CUDA_FLAGS from TORCH_CUDA_ARCH_LIST (or, with no GPU at configure time, a "common"
# list starting at compute_50, which CUDA 13's nvcc refuses); and torch 2.1-2.7 need a
# CUDA::nvToolsExt target that CUDA >= 12.9 no longer has. Here every one of those points at
# the toolkit of CMAKE_CUDA_COMPILER and the architectures of CMAKE_CUDA_ARCHITECTURES.
# Debian's CPU-only LibTorch ignores all of it.
if(QDM_HAVE_CUDA)
  get_filename_component(_qdm_cuda_root "${CUDAToolkit_BIN_DIR}" DIRECTORY)
  set(CUDA_TOOLKIT_ROOT_DIR "${_qdm_cuda_root}" CACHE PATH "CUDA toolkit (the one CMAKE_CUDA_COMPILER belongs to)" FORCE)
  set(CUDA_NVCC_EXECUTABLE "${CMAKE_CUDA_COMPILER}" CACHE FILEPATH "nvcc (CMAKE_CUDA_COMPILER)" FORCE)
  set(CUDAToolkit_ROOT "${_qdm_cuda_root}")
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "")  # 75;80;90 -> 7.5;8.0;9.0
    foreach(_a ${CMAKE_CUDA_ARCHITECTURES})
      string(REGEX REPLACE "^([0-9]+)([0-9])(a?)(-real|-virtual)?$" "\\1.\\2\\3" _d "${_a}")
      list(APPEND TORCH_CUDA_ARCH_LIST "${_d}")
    endforeach()
  endif()
  if(NOT TARGET CUDA::nvToolsExt)
    add_library(CUDA::nvToolsExt INTERFACE IMPORTED GLOBAL)
    if(TARGET CUDA::nvtx3)
      target_link_libraries(CUDA::nvToolsExt INTERFACE CUDA::nvtx3)
    endif()
  endif()
  list(GET CUDAToolkit_INCLUDE_DIRS 0 _qdm_cuda_inc)
  if(EXISTS "${_qdm_cuda_inc}/nvtx3")
    set(nvtx3_dir "${_qdm_cuda_inc}" CACHE PATH "NVTX3 headers (torch 2.5-2.7 look in their own source tree)")
  endif()
  set(_qdm_cuda_archs "${CMAKE_CUDA_ARCHITECTURES}")
endif()

find_package(Torch REQUIRED)

if(QDM_HAVE_CUDA)
  # Torch turned CMAKE_CUDA_ARCHITECTURES off and added -gencode flags: one list, ours.
  set(CMAKE_CUDA_ARCHITECTURES "${_qdm_cuda_archs}")
  string(REGEX REPLACE "[ ]*-gencode[ =]arch=compute_[0-9a-z]+,code=[a-z_0-9]+" "" CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS}")
  message(STATUS "qdm: CUDA ${CMAKE_CUDA_COMPILER_VERSION} (${CMAKE_CUDA_COMPILER}), architectures ${CMAKE_CUDA_ARCHITECTURES}; "
                 "LibTorch with CUDA: ${CAFFE2_USE_CUDA}")
endif()
