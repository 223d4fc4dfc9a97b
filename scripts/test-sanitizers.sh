#!/usr/bin/env bash
# The second CI script (.ci/sanitizers; docs/security.md says what it covers). Two clang
# builds beside the ordinary one:
#   1. build-asan: AddressSanitizer + UndefinedBehaviorSanitizer over the whole build
#      (llama.cpp, yaml-cpp and the tests included), with the libFuzzer targets
#      (-DFORKCAST_BUILD_FUZZ=ON). Runs the unit, db, llm, e2e and faults tests and replays
#      every fuzz corpus (label fuzz). The learning label (long training runs whose
#      arithmetic the unit tests already cover) is left to the ordinary build.
#   2. build-tsan: ThreadSanitizer over the threads the service runs: the decision log and
#      its journal, the feedback writer, the connection pool, the rate limiter, the user
#      directory and the router over a live Application.
# Any sanitizer report fails the run (halt_on_error; -fno-sanitize-recover for UBSan).
# Usage: scripts/test-sanitizers.sh [asan|tsan]... (default: both). The build folders are
# $FORKCAST_ASAN_BUILD_DIR and $FORKCAST_TSAN_BUILD_DIR (default build-asan, build-tsan).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
asan_dir=${FORKCAST_ASAN_BUILD_DIR:-$root/build-asan}
tsan_dir=${FORKCAST_TSAN_BUILD_DIR:-$root/build-tsan}
stages=("$@")
[[ ${#stages[@]} -eq 0 ]] && stages=(asan tsan)
for stage in "${stages[@]}"; do
  [[ $stage == asan || $stage == tsan ]] || { echo "test-sanitizers: unknown stage '$stage' (allowed: asan, tsan)" >&2; exit 2; }
done

"$root/scripts/setup.sh" --with-fuzz
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
configure() {  # <dir> <cmake args...>
  local dir=$1; shift
  [[ -f "$dir/build.ninja" ]] && return 0
  CC=clang CXX=clang++ cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFORKCAST_BUILD_BENCH=OFF "${launcher[@]}" "$@"
}
# One BLAS and one OpenMP thread: their runtimes are not instrumented, and TSan would take
# their internal synchronisation for races.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
started=$(date +%s)

for stage in "${stages[@]}"; do
  stage_start=$(date +%s)
  if [[ $stage == asan ]]; then
    configure "$asan_dir" -DFORKCAST_BUILD_FUZZ=ON -DFORKCAST_SANITIZE=address,undefined
    cmake --build "$asan_dir"
    export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1
    export LSAN_OPTIONS=suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0
    (cd "$asan_dir" && ctest --output-on-failure --timeout 1800 -j "$(nproc)" -L 'unit|db|llm|e2e|faults|fuzz')
    unset ASAN_OPTIONS LSAN_OPTIONS
  else
    configure "$tsan_dir" -DFORKCAST_SANITIZE=thread
    programs=(tests/service/service_decision_log_test tests/service/service_decision_journal_test
              tests/service/service_journal_record_test tests/service/service_rate_limiter_test
              tests/service/service_user_directory_test tests/service/service_router_test
              tests/db/db_feedback_writer_test tests/db/db_pool_test)
    cmake --build "$tsan_dir" --target "${programs[@]##*/}"
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/sanitizers/tsan.supp"
    for program in "${programs[@]}"; do
      echo "tsan: $program"
      (cd "$root" && "$tsan_dir/$program" --gtest_brief=1)
    done
    unset TSAN_OPTIONS
  fi
  echo "test-sanitizers: $stage finished in $(( $(date +%s) - stage_start )) s"
done
echo "test-sanitizers: all clean in $(( $(date +%s) - started )) s"
