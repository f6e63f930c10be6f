# calls.sh — sourced by device-call scripts (tests/gpu/device_run.sh, and the one-off scripts kept
# with each run under results/gpu/): the pieces every call repeats. Needs OUT (the device tool's
# output folder). Functions:
#   call_info LOGDIR           card, driver, CUDA, cores into LOGDIR/info.log (and to stdout)
#   call_step LOGDIR TGZ NAME TIMEOUT CMD...
#                              runs CMD into LOGDIR/NAME.log, appends "rc=R (S s)", packs LOGDIR
#                              into $OUT/TGZ (so a call cut by its time limit keeps what ran)
#   pages_cases                the --case list of issue #4's page-size rows: four spec §7 rows
#                              at pages 16 / 64 / 128 (the bench draws the same lengths for each)
call_info() {
  { date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
    nvcc --version | tail -1; nproc; } > "$1/info.log" 2>&1
  cat "$1/info.log"
}
call_step() {
  local dir=$1 tgz=$2 n=$3 t=$4; shift 4; local t0; t0=$(date +%s)
  timeout "$t" "$@" > "$dir/$n.log" 2>&1; local r=$?
  echo "rc=$r ($(( $(date +%s) - t0 )) s)" >> "$dir/$n.log"
  (cd "$(dirname "$dir")" && tar -czf "$OUT/$tgz" "$(basename "$dir")")
  echo "== $n: $(tail -n 1 "$dir/$n.log")"
}
pages_cases() {
  local row pg c out=""
  for row in 128,1,16,1,16384,varlen 128,1,128,1,8192,varlen 128,2,128,1,16384,varlen 8,1,128,1,8192,fixed; do
    for pg in 16 64 128; do
      c=fixed; case $row in 128,2,*) c=causal ;; esac
      out="$out --case ${row%,*},$pg,$c,${row##*,}"
    done
  done
  echo "$out"
}
