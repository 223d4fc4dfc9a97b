# Compiler flags shared by every forkcast target. Applied through an interface
# library so third-party code (yaml-cpp, gtest) is not held to our warning bar.
add_library(forkcast_options INTERFACE)
target_compile_options(forkcast_options INTERFACE -Wall -Wextra -Wpedantic)
# GCC fuses a*b+c into fma when the target has it (-march=native, ARM), which changes
# results in the last bits: environments and training must give the same trajectory for
# the same seed on every build, so contraction is off everywhere.
target_compile_options(forkcast_options INTERFACE -ffp-contract=off)
# GCC 12's -Wrestrict misfires on std::string concatenation at -O2/-O3 (GCC bug 105651,
# fixed in 13): silence that one false positive rather than contort every "a" + s + "b".
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(forkcast_options INTERFACE -Wno-restrict)
endif()
if(FORKCAST_WERROR)
  target_compile_options(forkcast_options INTERFACE -Werror)
endif()
if(FORKCAST_NATIVE)
  target_compile_options(forkcast_options INTERFACE -march=native)
endif()

# FORKCAST_BUILD_FUZZ: every library carries libFuzzer's coverage instrumentation
# (fuzzer-no-link), so a fuzz target that links the project's libraries is guided through
# their code too; the sanitizers default to address,undefined (a fuzzer without them finds
# only crashes). The targets themselves link -fsanitize=fuzzer (tests/fuzz/CMakeLists.txt).
if(FORKCAST_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES Clang)
    message(FATAL_ERROR "FORKCAST_BUILD_FUZZ needs clang (libFuzzer is part of clang's compiler-rt); "
                        "the C++ compiler is ${CMAKE_CXX_COMPILER_ID}. Configure with CC=clang CXX=clang++.")
  endif()
  if(NOT FORKCAST_SANITIZE)
    set(FORKCAST_SANITIZE address,undefined)
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

if(FORKCAST_SANITIZE)
  # One sanitizer or a comma-separated set; thread excludes address (one shadow memory).
  if(NOT FORKCAST_SANITIZE MATCHES "^(address|undefined|thread|address,undefined|undefined,address|thread,undefined|undefined,thread)$")
    message(FATAL_ERROR "FORKCAST_SANITIZE='${FORKCAST_SANITIZE}' is not one of: address, undefined, thread, "
                        "address,undefined or thread,undefined")
  endif()
  set(_san -fsanitize=${FORKCAST_SANITIZE} -fno-omit-frame-pointer)
  if(FORKCAST_SANITIZE MATCHES "undefined")
    # A report must fail the test that caused it, not scroll past in its log.
    list(APPEND _san -fno-sanitize-recover=undefined)
  endif()
  # Sanitizers apply to the whole build (llama.cpp and yaml-cpp included) so that mixed
  # instrumented/uninstrumented objects cannot hide a report.
  add_compile_options(${_san})
  add_link_options(${_san})
endif()
