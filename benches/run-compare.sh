#!/usr/bin/env bash
# Corral vs Curator vs the zookeeper-client crate, against one real ZooKeeper 3.8.0, in one run.
#
#   benches/run-compare.sh                      nosync then durable, 3 rounds each
#   MODES=nosync ROUNDS=2 benches/run-compare.sh
#   QUICK=1 benches/run-compare.sh              short windows, 1 round (smoke test, not for the table)
#
# Uses ../shared/anchors beside the repository: zk.sh starts the server exactly as the anchors do
# (127.0.0.1:21810, data in /tmp/anchor-zk) and CuratorAnchors.java is compiled with javac into
# a scratch dir ($BUILD, default /tmp/anchors-build). Every benchmark runs in its own process
# under `timeout`, with ANCHOR_EXEC_NS set just before exec, as the anchors' run-all.sh does.
# Clients: Curator (CuratorAnchors); Corral on Tokio's multi-thread runtime with the workload in
# a spawned task (corral-bench's default); the same with the workload on the main thread
# (`--driver main`, like code in the body of #[tokio::main]); Corral on the current-thread
# runtime; and the zookeeper-client crate (multi-thread, spawned). Their order rotates between
# rounds. Result lines go to $OUT_DIR/results-<date>.txt with the anchors' naming (Curator bare,
# Corral `corral_`, `corralmain_`, `corralct_`, zookeeper-client `zkc_`, and `nosync_` in front
# under forceSync=no); the medians table is printed at the end
# (benches/summarize.py). BIN=path/to/corral-bench skips the cargo build.
#
# Needs: Debian packages zookeeper, libcurator-{client,framework,recipes,discovery,test}-java,
# openjdk-17 (javac), and a Rust toolchain. The server is stopped at exit, whatever happens.
set -uo pipefail

REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
ANCHORS=${ANCHORS:-$REPO/../shared/anchors}
BUILD=${BUILD:-/tmp/anchors-build}
MODES=${MODES:-"nosync durable"}
ROUNDS=${ROUNDS:-3}
OUT_DIR=${OUT_DIR:-$REPO/target/bench-compare}
ZK=127.0.0.1:21810
DATE=$(date +%Y%m%d-%H%M%S)
OUT="$OUT_DIR/results-$DATE.txt"
LOGDIR="$OUT_DIR/logs-$DATE"
mkdir -p "$LOGDIR"

RUST_FLAGS=()
JAVA_TP=()
if [ -n "${QUICK:-}" ]; then
  ROUNDS=1
  RUST_FLAGS=(--gets 3000 --get-secs 3 --pairs 500 --pair-secs 5 --warmup-secs 1 --window-secs 2 --warm-connects 5)
  JAVA_TP=(-DtpSeconds=2)
fi

J=/usr/share/java
CP="$J/curator-recipes.jar:$J/curator-x-discovery.jar:$J/curator-test.jar:$J/curator-framework.jar:$J/curator-client.jar"
CP="$CP:$J/zookeeper.jar:$J/zookeeper-jute.jar:$J/guava.jar:$J/slf4j-api.jar:$J/jackson-databind.jar:$J/jackson-core.jar:$J/jackson-annotations.jar"
RUNCP="$BUILD/classes:$CP:$J/slf4j-simple.jar"
JAVA_OPTS=(-Xms256m -Xmx1g -XX:+UseG1GC
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn
  -Dorg.slf4j.simpleLogger.log.org.apache.zookeeper.ClientCnxn=error
  -Dzk=$ZK)

# ---------------------------------------------------------------- preflight
for f in "$ANCHORS/zk.sh" "$ANCHORS/java/CuratorAnchors.java" "$J/curator-test.jar" "$J/zookeeper.jar"; do
  [ -e "$f" ] || { echo "missing $f (apt-get install zookeeper libcurator-test-java libcurator-recipes-java libcurator-discovery-java)" >&2; exit 1; }
done
if "$ANCHORS/zk.sh" status >/dev/null 2>&1; then
  echo "a ZooKeeper started by zk.sh is already running; stop it first ($ANCHORS/zk.sh stop)" >&2; exit 1
fi
if (exec 3<>/dev/tcp/127.0.0.1/21810) 2>/dev/null; then
  echo "something already listens on 127.0.0.1:21810" >&2; exit 1
fi
if [ ! -f "$BUILD/classes/CuratorAnchors.class" ] || [ "$ANCHORS/java/CuratorAnchors.java" -nt "$BUILD/classes/CuratorAnchors.class" ]; then
  mkdir -p "$BUILD/classes"
  javac -implicit:none -sourcepath "" -d "$BUILD/classes" -cp "$CP" "$ANCHORS/java/CuratorAnchors.java" || { echo "javac failed" >&2; exit 1; }
fi
if [ -z "${BIN:-}" ]; then
  (cd "$REPO" && cargo build --release -p corral-bench) || { echo "cargo build failed" >&2; exit 1; }
  BIN="$REPO/target/release/corral-bench"
fi

trap '"$ANCHORS/zk.sh" stop >/dev/null 2>&1' EXIT

log() { echo "$*" | tee -a "$OUT"; }

# ---------------------------------------------------------------- per-benchmark accounting (as run-all.sh)
cpu_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; t=b+$5+$6; print b, t}' /proc/stat; }
pid_ticks() { [ -r "/proc/$1/stat" ] && awk '{print $14+$15}' "/proc/$1/stat" || echo 0; }
CLK=$(getconf CLK_TCK)

# run_bench MODE LIB BENCH PREFIX CMD...: metric lines into $OUT as [nosync_]PREFIX<metric>
run_bench() {
  local mode=$1 lib=$2 bench=$3 libprefix=$4; shift 4
  local zkpid; zkpid=$(cat /tmp/anchor-zk/zk.pid)
  read -r b0 t0 < <(cpu_ticks)
  local z0; z0=$(pid_ticks "$zkpid")
  local start; start=$(date +%s.%N)
  local tf; tf=$(mktemp)
  local base="$LOGDIR/$lib-$bench-$mode-r$round"
  { TIMEFORMAT='%U %S'; time ANCHOR_EXEC_NS=$(date +%s%N) timeout -k 5 120 "$@" >"$base.out" 2>"$base.err"; } 2>"$tf"
  local rc=$?
  local end; end=$(date +%s.%N)
  read -r b1 t1 < <(cpu_ticks)
  local z1; z1=$(pid_ticks "$zkpid")
  local cu cs; read -r cu cs < <(tail -1 "$tf"); rm -f "$tf"
  local prefix=""; [ "$mode" = nosync ] && prefix="nosync_"
  # Corral's own lines are bare; zookeeper-client's already carry zkc_.
  grep -E '^[a-z0-9_]+=' "$base.out" | sed "s/^/$prefix$libprefix/" >>"$OUT"
  grep -E '^# ' "$base.out" | grep -v '^# bench ' | sed "s/^# /# [$mode $lib $bench r$round] /" >>"$OUT"
  awk -v m="$mode" -v l="$lib" -v b="$bench" -v r="$round" -v rc="$rc" -v w0="$start" -v w1="$end" \
      -v db="$((b1 - b0))" -v dt="$((t1 - t0))" -v dz="$((z1 - z0))" -v cu="${cu:-0}" -v cs="${cs:-0}" \
      -v clk="$CLK" 'BEGIN {
        wall = w1 - w0; busy = db / clk; tot = dt / clk;
        zk = dz / clk; cl = cu + cs; other = busy - zk - cl; if (other < 0) other = 0;
        printf "# [%s %s %s r%s] rc=%d wall=%.1fs machine_busy=%.0f%% zk_cpu=%.2f cores client_cpu=%.2f cores other_cpu=%.2f cores\n",
          m, l, b, r, rc, wall, (tot > 0 ? 100 * busy / tot : 0), zk / wall, cl / wall, other / wall }' | tee -a "$OUT"
  [ $rc -ne 0 ] && log "# [$mode $lib $bench r$round] FAILED rc=$rc; see $base.err"
  return 0
}

curator() { run_bench "$mode" curator "$1" "" java "${JAVA_OPTS[@]}" "${JAVA_TP[@]}" -cp "$RUNCP" CuratorAnchors "$1"; }
corral() { run_bench "$mode" corral "$1" "corral_" "$BIN" --zk "$ZK" "${RUST_FLAGS[@]}" "$1"; }
corralmain() { run_bench "$mode" corralmain "$1" "corralmain_" "$BIN" --zk "$ZK" --driver main "${RUST_FLAGS[@]}" "$1"; }
corralct() { run_bench "$mode" corralct "$1" "corralct_" "$BIN" --zk "$ZK" --runtime current "${RUST_FLAGS[@]}" "$1"; }
zkc() { run_bench "$mode" zkc "$1" "" "$BIN" --zk "$ZK" --client zkclient "${RUST_FLAGS[@]}" "$1"; }

# ---------------------------------------------------------------- header
{
  echo "# compare run $DATE (host $(hostname), $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r))"
  echo "# cpu: $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
  echo "# java: $(java -version 2>&1 | head -1)"
  echo "# debian packages: $(dpkg-query -W -f='${Package}=${Version} ' zookeeper libcurator-framework-java 2>/dev/null)"
  echo "# rust: $(rustc -V); corral $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo '+dirty')"
  echo "# rounds=$ROUNDS modes=$MODES rust_flags=${RUST_FLAGS[*]:-} java_tp=${JAVA_TP[*]:-}"
} | tee "$OUT"

for mode in $MODES; do
  "$ANCHORS/zk.sh" stop >/dev/null 2>&1
  "$ANCHORS/zk.sh" start "$mode" | sed 's/^/# /' | tee -a "$OUT"
  log "# zookeeper: $("$ANCHORS/zk.sh" 4lw srvr | head -1)"
  log "## mode=$mode"
  round=0
  run_bench "$mode" curator warmup "" java "${JAVA_OPTS[@]}" -cp "$RUNCP" CuratorAnchors warmup
  libs=(curator corral corralmain corralct zkc)
  for round in $(seq 1 "$ROUNDS"); do
    # rotate the order of the clients each round
    k=$(((round - 1) % ${#libs[@]}))
    order=("${libs[@]:$k}" "${libs[@]:0:$k}")
    for lib in "${order[@]}"; do
      for b in latency throughput startup; do
        "$lib" "$b"
      done
    done
  done
  log "# zookeeper mntr at end: $("$ANCHORS/zk.sh" 4lw mntr | grep -E 'zk_avg_latency|zk_max_latency|zk_packets_received' | tr '\t\n' '= ')"
  "$ANCHORS/zk.sh" stop | sed 's/^/# /' | tee -a "$OUT"
done
trap - EXIT
log "# done $(date +%Y%m%d-%H%M%S)"
echo "results: $OUT"
python3 "$(dirname "$0")/summarize.py" "$OUT"
