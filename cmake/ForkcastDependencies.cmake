# Every dependency is a Debian 12 package installed by scripts/setup.sh.
find_package(Threads REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
# OpenBLAS (libopenblas-dev) through pkg-config, which names the build Debian selected and its
# own cblas.h (not the reference BLAS's one that libblas-dev may also install).
find_package(PkgConfig REQUIRED)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
find_library(FORKCAST_NUMA_LIBRARY numa REQUIRED)  # libnuma-dev: NUMA placement of training workers
if(FORKCAST_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(FORKCAST_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
