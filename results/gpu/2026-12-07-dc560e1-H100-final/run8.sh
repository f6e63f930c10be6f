#!/usr/bin/env bash
# SASS instruction counts of HEAD's kernel objects (built off the device; no cuobjdump on the build machine)
set -u
mkdir -p .devcarry/o30 && tar -xJf .devcarry/obj30.txz -C .devcarry/o30
L=$OUT/s35c8; mkdir -p "$L"
for obj in .devcarry/o30/obj/*.o; do
  echo "== SASS instruction counts: $(basename $obj) sm_90a (all kernels of the file)"
  cuobjdump --gpu-architecture sm_90a --dump-sass "$obj" 2>/dev/null |
    grep -oE "(HMMA|HGMMA|WARPGROUP|LDSM|LDGSTS|UTMALDG|SYNCS|STSM|BAR|LDL|STL|MUFU|FENCE)[.A-Z0-9_]*" | sort | uniq -c
done > "$L/sass_counts.log" 2>&1
grep -cE "LDL|STL" "$L/sass_counts.log"; grep -E "WARPGROUP|HGMMA" "$L/sass_counts.log" | head -12
