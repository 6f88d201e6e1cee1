#!/usr/bin/env bash
# User-space instructions per durable webhook: `phonetree serve` under valgrind's callgrind, fed by
# wrk with 2 connections (a driver here, not a throughput run), counters zeroed once the node is
# ready and dumped when wrk is done; prints the instructions over wrk's answered requests (all,
# SHA-256's, the rest).
#
#   benches/wrk/callgrind.sh [new_call|whole_call] [SECONDS]    (defaults: new_call 8)
#
# PHONETREE_BIN (default target/release/phonetree, built with `cargo build --release --bin
# phonetree`) is the binary measured; OUT (default /tmp/phonetree-callgrind) keeps the data dir,
# the profile (`cg.out.1`, read with `callgrind_annotate --inclusive=yes OUT/cg.out.1`) and wrk's
# output. Run from the repository's root. Needs valgrind and wrk.
set -euo pipefail

workload=${1:-new_call}
secs=${2:-8}
bin=${PHONETREE_BIN:-target/release/phonetree}
out=${OUT:-/tmp/phonetree-callgrind}
script=benches/wrk/$workload.lua
[[ -f $script ]] || { echo "no workload $script" >&2; exit 2; }
[[ -x $bin ]] || { echo "no binary $bin: cargo build --release --bin phonetree" >&2; exit 2; }

rm -rf "$out"
mkdir -p "$out"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" "$bin" serve --machines machines \
  --data "$out/data" --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 >"$out/node.log" 2>&1 &
node=$!
trap 'kill "$node" 2>/dev/null || true' EXIT

# Ready when /readyz answers 200 (valgrind makes the start slow): a condition, not a sleep count.
for _ in $(seq 1 600); do
  if curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$node" || { cat "$out/node.log" >&2; exit 1; }
  sleep 0.5
done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null

# Warm-up (first allocations, lazy statics), then zero the counters. The two wrk runs number
# their sessions apart (PHONETREE_WRK_PROCESS), so every measured request is a new session.
PHONETREE_WRK_PROCESS=1 wrk -t2 -c2 -d2s -s "$script" "http://127.0.0.1:$port" >/dev/null
callgrind_control -z "$node" >/dev/null 2>&1
PHONETREE_WRK_PROCESS=2 wrk -t2 -c2 -d"${secs}s" --timeout 30s -s "$script" "http://127.0.0.1:$port" >"$out/wrk.txt"
callgrind_control -d "$node" >/dev/null 2>&1
kill -INT "$node"
wait "$node" || true
trap - EXIT

requests=$(sed -n 's/^wrk_result requests=\([0-9]*\).*/\1/p' "$out/wrk.txt")
errors=$(sed -n 's/.*non200=\([0-9]*\) unexpected=\([0-9]*\).*/\1 \2/p' "$out/wrk.txt")
# The dump made by callgrind_control -d (the counters since the zeroing); the final dump at exit
# (`cg.out`) holds only the shutdown.
dump=$out/cg.out.1
total=$(callgrind_annotate "$dump" 2>/dev/null | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
# SHA-256 apart: valgrind's CPU has no SHA extensions, so `sha2` runs its software rounds here.
sha=$(callgrind_annotate --threshold=100 "$dump" 2>/dev/null | grep -m1 'sha2::sha256::soft::.*compress' |
  awk '{print $1}' | tr -d , || true)
sha=${sha:-0}
echo "workload=$workload requests=$requests non200/unexpected=$errors instructions=$total" \
  "per_request=$((total / requests)) sha256_per_request=$((sha / requests))" \
  "rest_per_request=$(((total - sha) / requests)) profile=$dump"
