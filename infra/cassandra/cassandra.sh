#!/usr/bin/env bash
# A real Apache Cassandra node (or a 3-node cluster on 127.0.0.1-3) from Maven
# Central artifacts: no Docker, no tarball. See README.md in this directory.
#
#   cassandra.sh fetch                 download cassandra-all and its dependencies (cached in ~/.m2)
#   cassandra.sh start [--nodes N]     start 1 (default) or 3 nodes and wait until each accepts CQL
#   cassandra.sh stop                  stop every node (SIGTERM, then SIGKILL after a timeout)
#   cassandra.sh kill NODE             SIGKILL one node (fault tests)
#   cassandra.sh start-node NODE       (re)start one node of the cluster
#   cassandra.sh status                which nodes run and answer
#   cassandra.sh nodetool ARGS...      NodeTool against node 1
#   cassandra.sh wipe                  stop and delete all data
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="${NUMREP_CASSANDRA_VERSION:-5.0.8}"
HOME_DIR="${NUMREP_CASSANDRA_HOME:-$HOME/.cache/numrep/cassandra}"
LIB="$HOME_DIR/lib-$VERSION"
RUN="$HOME_DIR/run"
HEAP="${NUMREP_CASSANDRA_HEAP:-1g}"
PORT="${NUMREP_CASSANDRA_PORT:-9042}"
TIMEOUT="${NUMREP_CASSANDRA_TIMEOUT:-240}"
TOKENS=(-9223372036854775808 -3074457345618258603 3074457345618258602)

log() { echo "cassandra: $*" >&2; }
die() { log "$*"; exit 1; }

java_home() {
  if [ -n "${NUMREP_JAVA_HOME:-}" ]; then echo "$NUMREP_JAVA_HOME"; return; fi
  local candidate
  for candidate in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64 /usr/lib/jvm/java-17-openjdk* /usr/lib/jvm/java-11-openjdk*; do
    if [ -x "$candidate/bin/java" ]; then echo "$candidate"; return; fi
  done
  # Cassandra 5.0 runs on Java 11 or 17 only; a newer default java refuses its SecurityManager.
  die "no Java 17 (or 11) found under /usr/lib/jvm; install openjdk-17-jdk-headless or set NUMREP_JAVA_HOME"
}

fetch() {
  if [ -f "$LIB/.complete" ]; then return; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Cassandra from Maven Central"
  log "fetching cassandra-all $VERSION and its dependencies from Maven Central (cached in ~/.m2)"
  rm -rf "$LIB.tmp"
  JAVA_HOME="$(java_home)" mvn -B -q -f "$HERE/pom.xml" dependency:copy-dependencies \
    -Dcassandra.version="$VERSION" -DincludeScope=runtime -DoutputDirectory="$LIB.tmp" \
    -Djmc5.path=/tmp -Djmc6.path=/tmp -Dvisualvm.path=/tmp
  rm -rf "$LIB" && mv "$LIB.tmp" "$LIB" && touch "$LIB/.complete"
  log "$(ls "$LIB"/*.jar | wc -l) jars in $LIB"
}

node_ip() { echo "127.0.0.$1"; }
node_dir() { echo "$RUN/node$1"; }
pid_file() { echo "$(node_dir "$1")/cassandra.pid"; }
jmx_port() { echo $((7100 + $1)); }

answers() { # does node N accept TCP on its CQL port?
  (exec 3<>"/dev/tcp/$(node_ip "$1")/$PORT") 2>/dev/null
}

running_pid() {
  local f; f="$(pid_file "$1")"
  [ -f "$f" ] || return 1
  local pid; pid="$(cat "$f")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

write_config() { # node, nodes
  local n="$1" nodes="$2" dir; dir="$(node_dir "$n")"
  mkdir -p "$dir/data" "$dir/commitlog" "$dir/saved_caches" "$dir/hints" "$dir/cdc_raw" "$dir/logs"
  local token_line="" 
  if [ "$nodes" -gt 1 ]; then token_line="initial_token: ${TOKENS[$((n - 1))]}"; fi
  cat > "$dir/cassandra.yaml" <<YAML
cluster_name: numrep-test
num_tokens: 1
$token_line
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:7000"
listen_address: $(node_ip "$n")
rpc_address: $(node_ip "$n")
storage_port: 7000
native_transport_port: $PORT
start_native_transport: true
data_file_directories:
  - $dir/data
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
cdc_raw_directory: $dir/cdc_raw
# Periodic sync: a write is in the commit log (OS page cache) before it is
# acknowledged, so it survives a killed JVM; only a power loss within the period
# could lose it, and RF=3 with QUORUM covers that in a cluster.
commitlog_sync: periodic
commitlog_sync_period: 10000ms
auto_bootstrap: false
auto_snapshot: false
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 4
concurrent_compactors: 1
compaction_throughput: 64MiB/s
# LWTs (label-id de-duplication) and batches on a small machine.
cas_contention_timeout: 2000ms
write_request_timeout: 4000ms
read_request_timeout: 4000ms
batch_size_warn_threshold: 64KiB
batch_size_fail_threshold: 640KiB
YAML
  cat > "$dir/logback.xml" <<XML
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$dir/logs/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
XML
}

jvm_flags() { # node
  local n="$1" dir; dir="$(node_dir "$n")"
  local jamm; jamm="$(ls "$LIB"/jamm-*.jar | head -1)"
  local flags=(
    -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:+HeapDumpOnOutOfMemoryError -Xss256k
    -XX:+AlwaysPreTouch -XX:-UseCompressedClassPointers
    -javaagent:"$jamm"
    -Djdk.attach.allowAttachSelf=true
    -Djava.net.preferIPv4Stack=true
    -Dio.netty.tryReflectionSetAccessible=true -Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11
    -Dchronicle.analytics.disable=true
    -Dcassandra.config="file://$dir/cassandra.yaml"
    -Dlogback.configurationFile="$dir/logback.xml"
    -Dcassandra.logdir="$dir/logs" -Dcassandra.storagedir="$dir"
    -Dcassandra.jmx.local.port="$(jmx_port "$n")"
    -Dcassandra-foreground=yes
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.unsafesystem=true
  )
  local ex
  for ex in java.base/jdk.internal.misc java.management.rmi/com.sun.jmx.remote.internal.rmi \
            java.management/com.sun.jmx.remote.security java.rmi/sun.rmi.registry java.rmi/sun.rmi.server \
            java.sql/java.sql java.base/java.lang.ref jdk.unsupported/sun.misc \
            jdk.attach/sun.tools.attach jdk.compiler/com.sun.tools.javac.file; do
    flags+=(--add-exports "$ex=ALL-UNNAMED")
  done
  for ex in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
            java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
            java.base/jdk.internal.util.jar java.base/sun.nio.ch java.base/java.io java.base/java.lang.reflect \
            java.base/java.lang java.base/java.util java.base/java.nio java.base/java.util.concurrent \
            java.base/java.util.concurrent.atomic java.base/java.net \
            jdk.management/com.sun.management.internal jdk.compiler/com.sun.tools.javac; do
    flags+=(--add-opens "$ex=ALL-UNNAMED")
  done
  printf '%s\n' "${flags[@]}"
}

start_node() { # node, nodes
  local n="$1" nodes="${2:-1}"
  if running_pid "$n" >/dev/null && answers "$n"; then
    log "node $n already running on $(node_ip "$n"):$PORT"; return
  fi
  fetch
  write_config "$n" "$nodes"
  local dir; dir="$(node_dir "$n")"
  local jh; jh="$(java_home)"
  mapfile -t flags < <(jvm_flags "$n")
  local started; started=$(date +%s)
  : > "$dir/logs/stdout.log"
  nohup "$jh/bin/java" "${flags[@]}" -cp "$LIB/*" org.apache.cassandra.service.CassandraDaemon \
    >>"$dir/logs/stdout.log" 2>&1 &
  echo $! > "$(pid_file "$n")"
  while ! answers "$n"; do
    if ! running_pid "$n" >/dev/null; then
      tail -n 40 "$dir/logs/stdout.log" "$dir/logs/system.log" >&2 2>/dev/null || true
      die "node $n exited during start-up (logs in $dir/logs)"
    fi
    if [ $(( $(date +%s) - started )) -gt "$TIMEOUT" ]; then
      tail -n 40 "$dir/logs/system.log" >&2 2>/dev/null || true
      die "node $n did not accept CQL within ${TIMEOUT}s (logs in $dir/logs)"
    fi
    sleep 1
  done
  log "node $n ready on $(node_ip "$n"):$PORT in $(( $(date +%s) - started ))s (Cassandra $VERSION, $("$jh/bin/java" -version 2>&1 | head -1))"
}

start() {
  local nodes=1
  if [ "${1:-}" = "--nodes" ]; then nodes="${2:?--nodes needs a number}"; fi
  [ "$nodes" = 1 ] || [ "$nodes" = 3 ] || die "--nodes must be 1 or 3"
  if [ "$nodes" = 3 ] && [ "$PORT" != 9042 ]; then die "the 3-node cluster uses port 9042 on 127.0.0.1-3"; fi
  local previous="$RUN/nodes"
  if [ -f "$previous" ] && [ "$(cat "$previous")" != "$nodes" ]; then
    log "switching from $(cat "$previous") to $nodes node(s): wiping the old data"
    wipe
  fi
  mkdir -p "$RUN" && echo "$nodes" > "$RUN/nodes"
  local all_started; all_started=$(date +%s)
  local n
  for n in $(seq 1 "$nodes"); do start_node "$n" "$nodes"; done
  log "$nodes node(s) ready in $(( $(date +%s) - all_started ))s"
}

stop_node() {
  local n="$1" pid
  pid="$(running_pid "$n")" || { rm -f "$(pid_file "$n")"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 60 ]; then log "node $n did not stop in 60s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 1; waited=$((waited + 1))
  done
  rm -f "$(pid_file "$n")"
  log "node $n stopped"
}

stop() {
  local n
  for n in 1 2 3; do stop_node "$n"; done
}

kill_node() {
  local n="${1:?node number}" pid
  pid="$(running_pid "$n")" || die "node $n is not running"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  rm -f "$(pid_file "$n")"
  log "node $n killed (SIGKILL)"
}

status() {
  local n any=1
  for n in 1 2 3; do
    if pid="$(running_pid "$n")"; then
      any=0
      if answers "$n"; then echo "node $n: running (pid $pid), answers on $(node_ip "$n"):$PORT"
      else echo "node $n: running (pid $pid), not answering yet"; fi
    fi
  done
  [ "$any" = 0 ] || { echo "no node running"; return 3; }
}

nodetool() {
  local jh; jh="$(java_home)"
  "$jh/bin/java" -Xmx256m -cp "$LIB/*" -Dcassandra.storagedir="$RUN" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$(jmx_port 1)" "$@"
}

wipe() {
  stop
  rm -rf "$RUN"
  log "data wiped"
}

case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  kill) kill_node "${2:-}" ;;
  start-node) start_node "${2:?node number}" "$(cat "$RUN/nodes" 2>/dev/null || echo 1)" ;;
  status) status ;;
  nodetool) shift; nodetool "$@" ;;
  wipe) wipe ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
