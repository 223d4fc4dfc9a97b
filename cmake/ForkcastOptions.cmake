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

if(FORKCAST_SANITIZE)
  if(NOT FORKCAST_SANITIZE MATCHES "^(address|undefined|thread)$")
    message(FATAL_ERROR "FORKCAST_SANITIZE='${FORKCAST_SANITIZE}' is not one of: address, undefined, thread")
  endif()
  set(_san -fsanitize=${FORKCAST_SANITIZE} -fno-omit-frame-pointer)
  if(FORKCAST_SANITIZE STREQUAL "undefined")
    list(APPEND _san -fno-sanitize-recover=undefined)
  endif()
  # Sanitizers apply to the whole build so that mixed instrumented/uninstrumented
  # objects cannot hide a report.
  add_compile_options(${_san})
  add_link_options(${_san})
endif()
