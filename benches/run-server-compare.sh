#!/usr/bin/env bash
# The embedded server (the corral-server release binary) against a real ZooKeeper 3.8.0 with
# forceSync=no, in one run, with Corral's client: issue 3's targets (corral-bench `server-*`).
#
#   benches/run-server-compare.sh                         all four benchmarks, 3 rounds
#   ROUNDS=2 benches/run-server-compare.sh server-idle    one benchmark
#   QUICK=1 benches/run-server-compare.sh                 small and short (smoke test, not for the table)
#   PIN_CPU= benches/run-server-compare.sh server-ops     without the pinned latency pass (default: CPU 1)
#
# ZooKeeper is started with ../shared/anchors/zk.sh start nosync (127.0.0.1:21810, data in
# /tmp/anchor-zk) and corral-bench gets --zk-sh, so it restarts ZooKeeper where a benchmark needs
# a fresh process (startup timing, memory, idle sessions). ZooKeeper is stopped at exit, whatever
# happens; every corral-server the benchmark starts is killed by its pid. Output goes to
# $OUT_DIR/server-<date>.txt. BIN=path/to/corral-bench skips the cargo build (corral-server must
# sit next to it, or set SERVER_BIN). Extra arguments are benchmark names (default: server).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:-$REPO/../shared/anchors}
ROUNDS=${ROUNDS:-3}
OUT_DIR=${OUT_DIR:-$REPO/target/bench-server}
ZK=127.0.0.1:21810
DATE=$(date +%Y%m%d-%H%M%S)
OUT="$OUT_DIR/server-$DATE.txt"
mkdir -p "$OUT_DIR"

BENCHES=("$@")
[ ${#BENCHES[@]} -eq 0 ] && BENCHES=(server)

FLAGS=(--zk "$ZK" --zk-sh "$ANCHORS/zk.sh" --server-rounds "$ROUNDS")
if [ -n "${QUICK:-}" ]; then
  FLAGS=(--zk "$ZK" --zk-sh "$ANCHORS/zk.sh" --server-rounds 1 --startup-runs 5 --zk-startup-runs 1
    --idle-sessions 2000 --idle-window-secs 5 --gets 3000 --get-secs 3 --pairs 500 --pair-secs 5
    --warmup-secs 1 --window-secs 2)
fi
[ -n "${SERVER_BIN:-}" ] && FLAGS+=(--server-bin "$SERVER_BIN")
# server-ops also measures sequential latency with both servers and the client pinned to this
# CPU (PIN_CPU= to skip): on a small VM the wake-up of an idle vCPU dominates a loopback round trip.
PIN_CPU=${PIN_CPU-1}
[ -n "$PIN_CPU" ] && FLAGS+=(--pin-cpu "$PIN_CPU")

# ---------------------------------------------------------------- preflight
[ -x "$ANCHORS/zk.sh" ] || { echo "missing $ANCHORS/zk.sh" >&2; exit 1; }
if "$ANCHORS/zk.sh" status >/dev/null 2>&1; then
  echo "a ZooKeeper started by zk.sh is already running (someone else's?); stop it first ($ANCHORS/zk.sh stop)" >&2; exit 1
fi
if (exec 3<>/dev/tcp/127.0.0.1/21810) 2>/dev/null; then
  echo "something already listens on 127.0.0.1:21810" >&2; exit 1
fi
# 10,000 idle sessions: this process and the server each hold one descriptor per session.
ulimit -n 20000 2>/dev/null || true
if [ "$(ulimit -n)" -lt 12000 ]; then echo "ulimit -n is $(ulimit -n); server-idle needs about 10,100" >&2; fi
if [ -z "${BIN:-}" ]; then
  (cd "$REPO" && cargo build --release -p corral-server -p corral-bench) || { echo "cargo build failed" >&2; exit 1; }
  BIN="$REPO/target/release/corral-bench"
fi

trap '"$ANCHORS/zk.sh" stop >/dev/null 2>&1' EXIT

cpu_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; t=b+$5+$6; print b, t}' /proc/stat; }

# ---------------------------------------------------------------- header
{
  echo "# server compare run $DATE (host $(hostname), $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r))"
  echo "# cpu: $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
  echo "# java: $(java -version 2>&1 | head -1); zookeeper package: $(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null)"
  echo "# rust: $(rustc -V); corral $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- server core proto 2>/dev/null || echo '+dirty')"
  echo "# benches=${BENCHES[*]} flags=${FLAGS[*]}"
  echo "# loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"

"$ANCHORS/zk.sh" start nosync | sed 's/^/# /' | tee -a "$OUT"
read -r b0 t0 < <(cpu_ticks)
w0=$(date +%s.%N)
"$BIN" "${FLAGS[@]}" "${BENCHES[@]}" 2>&1 | tee -a "$OUT"
rc=${PIPESTATUS[0]}
read -r b1 t1 < <(cpu_ticks)
w1=$(date +%s.%N)
awk -v db="$((b1 - b0))" -v dt="$((t1 - t0))" -v w0="$w0" -v w1="$w1" -v clk="$(getconf CLK_TCK)" -v la="$(cut -d' ' -f1-3 /proc/loadavg)" \
  'BEGIN { wall = w1 - w0; printf "# run took %.0f s, rc='"$rc"'; machine busy %.0f%% (%.2f of the cores, all tenants); loadavg at end: %s\n", wall, (dt > 0 ? 100 * db / dt : 0), db / clk / wall, la }' | tee -a "$OUT"
echo "# results: $OUT"
exit "$rc"
