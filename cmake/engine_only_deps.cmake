# Dependencies of an engine-only build (QDM_ENGINE_ONLY): the system's when it has them,
# otherwise header-only copies under QDM_DEPS_DIR (include/{nlohmann,CLI,spdlog,fmt}) and
# googletest built from QDM_DEPS_DIR/googletest. libpng, zlib, OpenSSL and OpenMP are optional
# here: without them PNG files and gzip'd datasets cannot be read or written (a clear error
# when asked), SHA-256 is the portable implementation and the CPU kernels run serially. So a
# machine with a compiler, CMake, CUDA and LibTorch builds it (bench/gpu_check.sh).
# -DCMAKE_DISABLE_FIND_PACKAGE_<name>=ON takes the fallback on purpose (CHECK=1 does, for all).
find_package(nlohmann_json QUIET)
if(NOT TARGET nlohmann_json::nlohmann_json)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${QDM_DEPS_DIR}/include)
endif()
find_package(CLI11 CONFIG QUIET)
if(NOT TARGET CLI11::CLI11)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  set_target_properties(CLI11::CLI11 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${QDM_DEPS_DIR}/include)
endif()
find_package(spdlog QUIET)
if(NOT TARGET spdlog::spdlog)
  # Header-only spdlog over header-only fmt (Debian's headers use an external fmt).
  add_library(spdlog::spdlog INTERFACE IMPORTED)
  set_target_properties(spdlog::spdlog PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${QDM_DEPS_DIR}/include
    INTERFACE_COMPILE_DEFINITIONS "SPDLOG_HEADER_ONLY;SPDLOG_FMT_EXTERNAL;FMT_HEADER_ONLY")
endif()
find_package(PNG QUIET)
find_package(ICU QUIET COMPONENTS uc)
find_package(ZLIB QUIET)
find_package(OpenSSL QUIET)
find_package(OpenMP QUIET)
foreach(_dep PNG ICU ZLIB OpenSSL OpenMP)
  if(NOT ${_dep}_FOUND)
    message(STATUS "qdm: engine-only build without ${_dep}")
  endif()
endforeach()
find_package(GTest QUIET)
if(NOT TARGET GTest::gtest_main AND EXISTS ${QDM_DEPS_DIR}/googletest/CMakeLists.txt)
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
  add_subdirectory(${QDM_DEPS_DIR}/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
  if(NOT TARGET GTest::gtest_main)  # googletest >= 1.11 defines it
    add_library(GTest::gtest_main ALIAS gtest_main)
  endif()
endif()
if(NOT TARGET GTest::gtest_main)
  message(STATUS "qdm: no GoogleTest (system or ${QDM_DEPS_DIR}/googletest): tests not built")
  set(QDM_BUILD_TESTS OFF)
endif()
