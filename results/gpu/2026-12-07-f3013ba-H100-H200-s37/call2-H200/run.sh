#!/usr/bin/env bash
# Thirty-seventh session, call 2: SP_SSF_LAZY with max_logits from the true row maxima (bin50: -DSP_SSF_LAZY=1,
# bin51: + -DSP_SSF_STSM=1) against bin44 (the default; the tree's default kernels hash as its) and bin46
# (STSM alone): four alternating prefill rounds, quick and whole sparse suites on 51 and 50; then the
# sparse decode's combine tail (bin49's CUPTI span rows with the combine's column slices forced 1..16, and
# without PDL) and ncu's per-launch figures of the combine kernels.
set -u
for n in 44 46 49 50 51; do mkdir -p .devcarry/b$n && tar -xJf .devcarry/bin$n.txz -C .devcarry/b$n; done
. .devcarry/calls.sh
L=$OUT/s37c2; mkdir -p "$L"; D=$PWD/.devcarry; T=s37c2.tgz
call_info "$L"
for r in 1 2 3 4; do for n in 44 46 50 51; do call_step "$L" $T pf$n-$r 30 env MLA_GIT_COMMIT=bin$n "$D/b$n/bin/mla-bench" --sparse-prefill; done; done
for n in 44 46 50 51; do echo "== $n"; for r in 1 2 3 4; do grep -E "^sparse prefill" "$L/pf$n-$r.log" | awk '{printf "%s ", $8} END {print ""}'; done; done
for n in 51 50; do call_step "$L" $T quick-$n 60 "$D/b$n/bin/test_gpu_sparse" --quick; tail -n 2 "$L/quick-$n.log" | head -1; done
for n in 51 50; do call_step "$L" $T sparse-$n 140 "$D/b$n/bin/test_gpu_sparse"; tail -n 2 "$L/sparse-$n.log" | head -1; grep -m 3 FAIL "$L/sparse-$n.log"; done
for r in 1 2; do
  for cfg in default MLA_GPU_COMBINE_SLICES=1 MLA_GPU_COMBINE_SLICES=2 MLA_GPU_COMBINE_SLICES=4 MLA_GPU_COMBINE_SLICES=8 MLA_GPU_COMBINE_SLICES=16 MLA_SPARSE_PDL=0; do
    call_step "$L" $T "dec-$cfg-$r" 30 env $([ $cfg = default ] || echo $cfg) MLA_GIT_COMMIT=bin49 "$D/b49/bin/mla-bench" --sparse-decode
    grep -E "\[span\]" "$L/dec-$cfg-$r.log" | sed -E 's/sparse decode V32 (b=[0-9]+).*page=64 \[span\] +([0-9.]+) us.*kernels at/\1 \2 us:/'
  done
done
call_step "$L" $T ncu-combine 120 env MLA_BENCH_KSPAN=0 ncu --csv --cache-control none -k regex:mla_sp_combine --metrics gpu__time_duration.sum,launch__grid_size,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_bytes.sum,lts__t_sector_hit_rate.pct,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__cycles_active.avg "$D/b49/bin/mla-bench" --sparse-decode --iters 1
python3 - "$L/ncu-combine.log" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows: sys.exit()
h = rows[0]; ID, MN, MV, KN = h.index("ID"), h.index("Metric Name"), h.index("Metric Value"), h.index("Kernel Name")
k = collections.OrderedDict()
for r in rows[1:]:
    k.setdefault(r[ID], {"name": r[KN].split("(")[0]})[r[MN]] = r[MV]
g = collections.defaultdict(list)
for m in k.values():
    g[(m["name"], m.get("launch__grid_size", "?"))].append(m)
for gs, ms in g.items():
    mid = sorted(ms, key=lambda m: float(m.get("gpu__time_duration.sum", "0").replace(",", "")))[len(ms) // 2]
    print(f"grid {gs} x{len(ms)}:", " ".join(f"{n.split('.')[0].split('__')[-1]}={mid[n]}" for n in mid if n not in ("launch__grid_size", "name")))
PY
(cd "$(dirname "$L")" && tar -czf "$OUT/$T" "$(basename "$L")")
