#!/usr/bin/env bash
tar -xJf .devcarry/bin.txz -C .devcarry
B=$PWD/.devcarry/bin; L=$OUT/logs; mkdir -p $L
pack() { (cd $OUT && tar -czf run.tgz logs); }
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv > $L/info.log 2>&1
for v in 0 1 2 3 4 5 6 7; do echo "== variant $v"; timeout 60 compute-sanitizer --tool racecheck $B/rcn $v 2>&1 | tail -4; done > $L/racecheck_nbar.log 2>&1
pack
timeout 120 $B/mla-bench --no-ceilings --case 128,2,128,1,16384,64,causal --case 128,1,128,1,16384 --case 128,1,16,1,16384 > $L/bench-base.log 2>&1; pack
OUT=$L BENCH=$B/mla-bench KREGEX=mla_decode_sm90tma timeout 200 bash tests/gpu/ncu_stalls.sh tma_s2h128 --case 128,2,128,1,16384,64,causal; pack
ncu --kernel-name regex:mla_decode_sm90tma --launch-count 1 --metrics lts__t_sectors_op_read.sum.per_second,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_sector_op_read_hit_rate.pct,lts__throughput.avg.pct_of_peak_sustained_elapsed,l1tex__m_xbar2l1tex_read_bytes.sum.per_second,dram__bytes_read.sum.per_second,gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second,lts__d_sectors_fill_device.sum $B/mla-bench --no-ceilings --no-graph --iters 1 --warmup 0 --case 128,1,128,1,16384 > $L/ncu_l2_s1.log 2>&1
pack
