#!/usr/bin/env bash
# Runs fuzzing campaigns: each target for a fixed time, from the committed corpus plus a
# working corpus that grows across runs, then shrinks what it found into a minimal corpus
# (-merge=1) on top of the seeds, and prints one summary row per target (tests/fuzz/README.md, "Campaigns").
#
# Usage: tests/fuzz/campaign.sh [--build DIR] [--seconds N] [--work DIR] [--parallel N] [target...]
#   --build DIR     folder holding tests/fuzz/fuzz_<name> (default build-asan)
#   --seconds N     how long each target runs (default 600)
#   --work DIR      working corpora, logs, findings and the summary (default DIR/corpus of --build)
#   --parallel N    targets run at once, one core each (default: the number of cores)
#   target...       default: every fuzz_<name> program in the build folder
# FUZZ_RUNNER, when set, is put before each program (e.g. a dynamic loader and its
# --library-path, where the program runs on a machine that lacks its libraries).
# Run it from the repository root: service and catalog read data/.
# Exit status: 0 when every target ran its time without a finding, 1 otherwise; the
# reproducer of a finding is <work>/<name>/finding-*.
set -euo pipefail
build=build-asan seconds=600 work="" parallel=$(nproc) targets=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "campaign: unknown option '$1' (allowed: --build, --seconds, --work, --parallel)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "campaign: --seconds '$seconds' is not a positive whole number" >&2; exit 2; }
[[ $parallel =~ ^[1-9][0-9]*$ ]] || { echo "campaign: --parallel '$parallel' is not a positive whole number" >&2; exit 2; }
[[ -d tests/fuzz/corpus ]] || { echo "campaign: run it from the repository root (no tests/fuzz/corpus here)" >&2; exit 2; }
work=${work:-$build/corpus}
if [[ ${#targets[@]} -eq 0 ]]; then
  for program in "$build"/tests/fuzz/fuzz_*; do
    [[ -x $program ]] && targets+=("${program##*/fuzz_}")
  done
fi
[[ ${#targets[@]} -gt 0 ]] || { echo "campaign: no fuzz_<name> programs in $build/tests/fuzz (build with -DFORKCAST_BUILD_FUZZ=ON)" >&2; exit 2; }
read -r -a runner <<< "${FUZZ_RUNNER:-}"

# Options that differ by target: inputs larger than the default 4 KiB where the format needs
# them, and a per-input time limit for the one target that waits on PostgreSQL.
target_options() {  # <name>
  case $1 in
    service) echo "-max_len=8192 -timeout=10" ;;
    gguf) echo "-max_len=16384 -timeout=10" ;;
    *) echo "-max_len=4096 -timeout=10" ;;
  esac
}

run_one() {  # <name>
  local name=$1 program="$build/tests/fuzz/fuzz_$1" dir="$work/$1"
  local dict="tests/fuzz/$1.dict" options
  mkdir -p "$dir/grown"
  read -r -a options <<< "$(target_options "$name")"
  [[ -f $dict ]] && options+=("-dict=$dict")
  local status=0
  "${runner[@]}" "$program" "${options[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$dir/finding-" "$dir/grown" "tests/fuzz/corpus/$name" > "$dir/log" 2>&1 || status=$?
  # min/ = the committed seeds (kept as they are, names included) + the grown inputs that
  # add coverage to them: what to commit after a campaign. libFuzzer's merge starts the
  # program itself again (argv[0]), which fails without the runner's libraries: under
  # FUZZ_RUNNER, grown/ is kept for a merge on a machine that has them.
  rm -rf "$dir/min" && cp -r "tests/fuzz/corpus/$name" "$dir/min"
  if [[ ${#runner[@]} -eq 0 ]]; then
    "$program" "${options[@]}" -merge=1 "$dir/min" "$dir/grown" > "$dir/merge.log" 2>&1 || true
  fi
  local runs seconds_run
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  seconds_run=$(sed -n 's/.*Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$dir/log" | tail -1)
  local verdict=clean
  if [[ $status -ne 0 ]] || compgen -G "$dir/finding-*" > /dev/null; then verdict="FINDING (exit $status; see $dir/log)"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${seconds_run:-?}" "${runs:-?}" \
    "$(find "$dir/grown" -type f | wc -l)" "$(find "$dir/min" -type f | wc -l)" "$verdict" > "$dir/summary.tsv"
}

mkdir -p "$work"
echo "campaign: ${#targets[@]} targets (${targets[*]}), ${seconds} s each, $parallel at a time, working corpora in $work"
running=0
for name in "${targets[@]}"; do
  [[ -x $build/tests/fuzz/fuzz_$name ]] || { echo "campaign: no program $build/tests/fuzz/fuzz_$name" >&2; exit 2; }
  run_one "$name" &
  running=$((running + 1))
  if [[ $running -ge $parallel ]]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

summary="$work/summary.tsv"
printf 'target\tseconds\texecutions\tgrown_corpus\tminimized_corpus\tresult\n' > "$summary"
failed=0
for name in "${targets[@]}"; do
  if [[ -f $work/$name/summary.tsv ]]; then
    cat "$work/$name/summary.tsv" >> "$summary"
    grep -q $'\tclean$' "$work/$name/summary.tsv" || failed=1
  else
    printf '%s\t?\t?\t?\t?\tdid not finish\n' "$name" >> "$summary"; failed=1
  fi
done
if command -v column > /dev/null; then column -t -s $'\t' "$summary"; else cat "$summary"; fi
exit $failed
