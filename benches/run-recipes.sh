#!/usr/bin/env bash
# Curator (../shared/anchors) vs Corral on the recipe benchmarks, against one real ZooKeeper 3.8.0,
# in one run: mutex, mutex-contended, leader, discovery, expiry, cache; then the in-process herd.
#
#   benches/run-recipes.sh                       nosync then durable, 3 rounds each
#   MODES=nosync ROUNDS=2 benches/run-recipes.sh
#   ZK_PORT=21811 benches/run-recipes.sh         a private copy of zk.sh on another port and data dir
#                                                (when another session starts and stops the one on 21810)
#   QUICK=1 benches/run-recipes.sh               small sizes, 1 round, nosync (smoke test, not for the table)
#
# Curator: CuratorAnchors.java (mutex, mutex-contended, leader, discovery, expiry) and
# benches/java/CuratorCacheBench.java (cache), compiled with javac into $BUILD (default
# /tmp/anchors-build), with run-all.sh's classpath and JVM options. Corral: corral-bench with the
# same benchmark names, plus `expiry` once more with --resession-jitter-ms 0 (prefix corralnj_).
# Every benchmark is its own process under `timeout`, with run-all.sh's CPU accounting; the
# client order alternates between rounds. Result lines go to $OUT_DIR/results-<date>.txt (Curator
# bare, Corral corral_, nosync_ in front under forceSync=no); benches/summarize_recipes.py prints
# the median table at the end. BIN=path/to/corral-bench skips the cargo build.
#
# Needs: Debian packages zookeeper, libcurator-{client,framework,recipes,discovery,test}-java,
# openjdk-17 (javac), and a Rust toolchain. The server is stopped at exit, whatever happens.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$HERE" rev-parse --show-toplevel)
ANCHORS=${ANCHORS:-$REPO/../shared/anchors}
BUILD=${BUILD:-/tmp/anchors-build}
MODES=${MODES:-"nosync durable"}
ROUNDS=${ROUNDS:-3}
OUT_DIR=${OUT_DIR:-$REPO/target/bench-recipes}
BENCHES=${BENCHES:-"mutex mutex-contended leader discovery expiry cache"}
ZK_PORT=${ZK_PORT:-21810}
ZK=127.0.0.1:$ZK_PORT
DATE=$(date +%Y%m%d-%H%M%S)
OUT="$OUT_DIR/results-$DATE.txt"
LOGDIR="$OUT_DIR/logs-$DATE"
mkdir -p "$LOGDIR" "$BUILD/classes"

RUST_FLAGS=()
JAVA_FLAGS=()
if [ -n "${QUICK:-}" ]; then
  ROUNDS=1
  MODES=nosync
  RUST_FLAGS=(--mutex-cycles 500 --contended-total 400 --leader-reps 5 --expiry-reps 3 --instances 200 --cache-nodes 1000 --cache-changes 200)
  JAVA_FLAGS=(-Dtotal=400 -Dreps=3 -Dinstances=200 -Dnodes=1000 -Dchanges=200)
fi

J=/usr/share/java
CP="$J/curator-recipes.jar:$J/curator-x-discovery.jar:$J/curator-test.jar:$J/curator-framework.jar:$J/curator-client.jar"
CP="$CP:$J/zookeeper.jar:$J/zookeeper-jute.jar:$J/guava.jar:$J/slf4j-api.jar:$J/jackson-databind.jar:$J/jackson-core.jar:$J/jackson-annotations.jar"
RUNCP="$BUILD/classes:$CP:$J/slf4j-simple.jar"
# run-all.sh's options; the KillSession demonstration round of `expiry` is skipped (it measures
# nothing compared here and takes a session timeout).
JAVA_OPTS=(-Xms256m -Xmx1g -XX:+UseG1GC
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn
  -Dorg.slf4j.simpleLogger.log.org.apache.zookeeper.ClientCnxn=error
  -DkillSession=false
  -Dzk=$ZK)

# ---------------------------------------------------------------- the server
if [ "$ZK_PORT" = 21810 ]; then
  ZKSH=$ANCHORS/zk.sh
  ZKBASE=/tmp/anchor-zk
else
  # The anchors' zk.sh, byte for byte, but for its port and base directory.
  ZKBASE=/tmp/anchor-zk-$ZK_PORT
  ZKSH=$BUILD/zk-$ZK_PORT.sh
  sed -e "s/^PORT=21810$/PORT=$ZK_PORT/" -e "s#^BASE=/tmp/anchor-zk\$#BASE=$ZKBASE#" "$ANCHORS/zk.sh" >"$ZKSH"
  chmod +x "$ZKSH"
  grep -q "^PORT=$ZK_PORT$" "$ZKSH" && grep -q "^BASE=$ZKBASE$" "$ZKSH" || { echo "cannot make a zk.sh for port $ZK_PORT" >&2; exit 1; }
fi

# ---------------------------------------------------------------- preflight
for f in "$ZKSH" "$ANCHORS/java/CuratorAnchors.java" "$HERE/java/CuratorCacheBench.java" "$J/curator-test.jar" "$J/zookeeper.jar"; do
  [ -e "$f" ] || { echo "missing $f (apt-get install zookeeper libcurator-test-java libcurator-recipes-java libcurator-discovery-java)" >&2; exit 1; }
done
if "$ZKSH" status >/dev/null 2>&1; then
  echo "a ZooKeeper started by $ZKSH is already running; stop it first ($ZKSH stop)" >&2; exit 1
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT") 2>/dev/null; then
  echo "something already listens on $ZK" >&2; exit 1
fi
for src in "$ANCHORS/java/CuratorAnchors.java" "$HERE/java/CuratorCacheBench.java"; do
  cls="$BUILD/classes/$(basename "$src" .java).class"
  if [ ! -f "$cls" ] || [ "$src" -nt "$cls" ]; then
    javac -implicit:none -sourcepath "" -d "$BUILD/classes" -cp "$CP" "$src" || { echo "javac $src failed" >&2; exit 1; }
  fi
done
if [ -z "${BIN:-}" ]; then
  (cd "$REPO" && cargo build --release -p corral-bench) || { echo "cargo build failed" >&2; exit 1; }
  BIN="$REPO/target/release/corral-bench"
fi

trap '"$ZKSH" stop >/dev/null 2>&1' EXIT

log() { echo "$*" | tee -a "$OUT"; }

# ---------------------------------------------------------------- per-benchmark accounting (as run-all.sh)
cpu_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; t=b+$5+$6; print b, t}' /proc/stat; }
pid_ticks() { [ -r "/proc/$1/stat" ] && awk '{print $14+$15}' "/proc/$1/stat" || echo 0; }
CLK=$(getconf CLK_TCK)

# run_bench MODE LIB BENCH PREFIX CMD...: metric lines into $OUT as [nosync_]PREFIX<metric>
run_bench() {
  local mode=$1 lib=$2 bench=$3 libprefix=$4; shift 4
  local zkpid; zkpid=$(cat "$ZKBASE/zk.pid")
  local la0; la0=$(cut -d' ' -f1 /proc/loadavg)
  read -r b0 t0 < <(cpu_ticks)
  local z0; z0=$(pid_ticks "$zkpid")
  local start; start=$(date +%s.%N)
  local tf; tf=$(mktemp)
  local base="$LOGDIR/$lib-$bench-$mode-r$round"
  { TIMEFORMAT='%U %S'; time timeout -k 5 150 "$@" >"$base.out" 2>"$base.err"; } 2>"$tf"
  local rc=$?
  local end; end=$(date +%s.%N)
  read -r b1 t1 < <(cpu_ticks)
  local z1; z1=$(pid_ticks "$zkpid")
  local la1; la1=$(cut -d' ' -f1 /proc/loadavg)
  local cu cs; read -r cu cs < <(tail -1 "$tf"); rm -f "$tf"
  local prefix=""; [ "$mode" = nosync ] && prefix="nosync_"
  grep -E '^[a-z0-9_]+=' "$base.out" | sed "s/^/$prefix$libprefix/" >>"$OUT"
  grep -E '^# ' "$base.out" | grep -v '^# bench ' | sed "s/^# /# [$mode $lib $bench r$round] /" >>"$OUT"
  awk -v m="$mode" -v l="$lib" -v b="$bench" -v r="$round" -v rc="$rc" -v w0="$start" -v w1="$end" \
      -v db="$((b1 - b0))" -v dt="$((t1 - t0))" -v dz="$((z1 - z0))" -v cu="${cu:-0}" -v cs="${cs:-0}" \
      -v clk="$CLK" -v la0="$la0" -v la1="$la1" 'BEGIN {
        wall = w1 - w0; busy = db / clk; tot = dt / clk;
        zk = dz / clk; cl = cu + cs; other = busy - zk - cl; if (other < 0) other = 0;
        printf "# [%s %s %s r%s] rc=%d wall=%.1fs machine_busy=%.0f%% zk_cpu=%.2f cores client_cpu=%.2f cores other_tenants_cpu=%.2f cores loadavg=%s->%s\n",
          m, l, b, r, rc, wall, (tot > 0 ? 100 * busy / tot : 0), zk / wall, cl / wall, other / wall, la0, la1 }' | tee -a "$OUT"
  [ $rc -ne 0 ] && log "# [$mode $lib $bench r$round] FAILED rc=$rc; see $base.err"
  return 0
}

curator() {
  case $1 in
    cache) run_bench "$mode" curator cache "" java "${JAVA_OPTS[@]}" "${JAVA_FLAGS[@]}" -cp "$RUNCP" CuratorCacheBench ;;
    *) run_bench "$mode" curator "$1" "" java "${JAVA_OPTS[@]}" "${JAVA_FLAGS[@]}" -cp "$RUNCP" CuratorAnchors "$1" ;;
  esac
}
corral() {
  run_bench "$mode" corral "$1" "corral_" "$BIN" --zk "$ZK" "${RUST_FLAGS[@]}" "$1"
  if [ "$1" = expiry ]; then
    run_bench "$mode" corralnj expiry "corralnj_" "$BIN" --zk "$ZK" --resession-jitter-ms 0 "${RUST_FLAGS[@]}" expiry
  fi
}

# ---------------------------------------------------------------- header
{
  echo "# recipes compare run $DATE (host $(hostname), $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r))"
  echo "# cpu: $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
  echo "# java: $(java -version 2>&1 | head -1)"
  echo "# debian packages: $(dpkg-query -W -f='${Package}=${Version} ' zookeeper libcurator-framework-java libcurator-recipes-java libcurator-discovery-java 2>/dev/null)"
  echo "# rust: $(rustc -V); corral $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- core recipes server proto 2>/dev/null || echo '+dirty'); bin $BIN"
  echo "# server: $ZKSH on $ZK; rounds=$ROUNDS modes=$MODES benches=$BENCHES rust_flags=${RUST_FLAGS[*]:-} java_flags=${JAVA_FLAGS[*]:-}"
} | tee "$OUT"

for mode in $MODES; do
  "$ZKSH" stop >/dev/null 2>&1
  "$ZKSH" start "$mode" | sed 's/^/# /' | tee -a "$OUT"
  log "# zookeeper: $("$ZKSH" 4lw srvr | head -1)"
  log "## mode=$mode"
  round=0
  run_bench "$mode" curator warmup "" java "${JAVA_OPTS[@]}" -cp "$RUNCP" CuratorAnchors warmup
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order=(curator corral); else order=(corral curator); fi
    for b in $BENCHES; do
      for lib in "${order[@]}"; do
        "$lib" "$b"
      done
    done
  done
  log "# zookeeper mntr at end: $("$ZKSH" 4lw mntr | grep -E 'zk_avg_latency|zk_max_latency|zk_packets_received' | tr '\t\n' '= ')"
  "$ZKSH" stop | sed 's/^/# /' | tee -a "$OUT"
done
trap - EXIT

# The herd needs no ZooKeeper: an embedded server in the benchmark's own process. Its results
# are bimodal (see README), so it runs HERD_ROUNDS (default 10) times.
if [ -z "${NO_HERD:-}" ]; then
  mode=embedded
  for round in $(seq 1 "${HERD_ROUNDS:-10}"); do
    base="$LOGDIR/corral-herd-r$round"
    timeout -k 5 150 "$BIN" herd >"$base.out" 2>"$base.err" || log "# [herd r$round] FAILED; see $base.err"
    grep -E '^[a-z0-9_]+=' "$base.out" | sed "s/^/corral_/" >>"$OUT"
    grep -E '^# herd' "$base.out" | sed "s/^# /# [herd r$round] /" | tee -a "$OUT"
  done
fi
log "# done $(date +%Y%m%d-%H%M%S)"
echo "results: $OUT"
python3 "$HERE/summarize_recipes.py" "$OUT"
