# Dependencies of an engine-only build (QDM_ENGINE_ONLY): the system's when it has them,
# otherwise header-only copies under QDM_DEPS_DIR (include/{nlohmann,CLI,spdlog,fmt}) and
# googletest built from QDM_DEPS_DIR/googletest.
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
find_package(OpenSSL REQUIRED)
find_package(GTest QUIET)
if(NOT TARGET GTest::gtest_main AND EXISTS ${QDM_DEPS_DIR}/googletest/CMakeLists.txt)
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  add_subdirectory(${QDM_DEPS_DIR}/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
  add_library(GTest::gtest_main ALIAS gtest_main)
endif()
