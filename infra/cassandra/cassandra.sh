#!/usr/bin/env bash
# A real Apache Cassandra 5.0 node (or a 3-node cluster on 127.0.0.1-3) from Maven
# Central artifacts: no Docker, no tarball. See README.md in this directory.
#
#   cassandra.sh fetch                 download cassandra-all and its runtime jars (cached in ~/.m2)
#   cassandra.sh start [--nodes N]     start 1 (default) or 3 nodes and wait until each accepts CQL
#   cassandra.sh stop                  stop every node (SIGTERM, then SIGKILL after a timeout)
#   cassandra.sh kill NODE             SIGKILL one node (fault tests)
#   cassandra.sh pause NODE            SIGSTOP one node: it hangs, its connections stay open (fault tests)
#   cassandra.sh resume NODE           SIGCONT a paused node
#   cassandra.sh start-node NODE       (re)start one node of the current cluster
#   cassandra.sh status                which nodes run and answer CQL (exit 3 if none runs)
#   cassandra.sh nodetool [--node N] ARGS...   NodeTool against node 1 (or N), e.g. `nodetool status`
#   cassandra.sh wipe                  stop and delete all node data and logs
#
# Environment: NUMREP_CASSANDRA_HOME (~/.cache/numrep/cassandra), NUMREP_CASSANDRA_VERSION,
# NUMREP_CASSANDRA_HEAP (1g), NUMREP_CASSANDRA_PORT (9042; single node only),
# NUMREP_CASSANDRA_TIMEOUT (180 s per node), NUMREP_CASSANDRA_NET (127.0.0: node N on NET.N),
# NUMREP_CASSANDRA_JMX_BASE (7100: node N's JMX on BASE+N), NUMREP_JAVA_HOME.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="${NUMREP_CASSANDRA_VERSION:-5.0.9}"
HOME_DIR="${NUMREP_CASSANDRA_HOME:-$HOME/.cache/numrep/cassandra}"
LIB="$HOME_DIR/lib-$VERSION"
RUN="$HOME_DIR/run"
HEAP="${NUMREP_CASSANDRA_HEAP:-1g}"
PORT="${NUMREP_CASSANDRA_PORT:-9042}"
TIMEOUT="${NUMREP_CASSANDRA_TIMEOUT:-180}"
STOP_TIMEOUT="${NUMREP_CASSANDRA_STOP_TIMEOUT:-60}"
NET="${NUMREP_CASSANDRA_NET:-127.0.0}"
JMX_BASE="${NUMREP_CASSANDRA_JMX_BASE:-7100}"
STORAGE_PORT=7000
# ccm's tokens for a 3-node Murmur3 ring (one token per node).
TOKENS=(-9223372036854775808 -3074457345618258603 3074457345618258602)

log() { echo "cassandra: $*" >&2; }
say() { echo "cassandra: $*"; }
die() { log "$*"; exit 1; }

java_home() {
  if [ -n "${NUMREP_JAVA_HOME:-}" ]; then echo "$NUMREP_JAVA_HOME"; return; fi
  local candidate
  # Never the machine's default or a Temurin 25: Cassandra 5.0 runs on Java 11 or 17 only
  # (it installs a SecurityManager at start-up, which JDK 24+ refuses).
  for candidate in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64 \
                   /usr/lib/jvm/java-17-openjdk* /usr/lib/jvm/temurin-17* /usr/lib/jvm/java-11-openjdk*; do
    if [ -x "$candidate/bin/java" ]; then echo "$candidate"; return; fi
  done
  die "no Java 17 (or 11) under /usr/lib/jvm: apt-get install openjdk-17-jdk-headless, or set NUMREP_JAVA_HOME"
}

fetch() {
  if [ -f "$LIB/.complete" ] && [ -f "$LIB/cassandra-all-$VERSION.jar" ]; then return; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Cassandra from Maven Central (apt-get install maven)"
  local started; started=$(date +%s)
  log "fetching cassandra-all $VERSION and its runtime dependencies (Maven, cached in ~/.m2)"
  rm -rf "$LIB.tmp"
  local args=(-B -q -f "$HERE/pom.xml" dependency:copy-dependencies -Dcassandra.version="$VERSION"
              -DincludeScope=runtime -DoutputDirectory="$LIB.tmp")
  # Offline first (everything already in ~/.m2), online otherwise.
  if ! JAVA_HOME="$(java_home)" mvn -o "${args[@]}" >/dev/null 2>&1; then
    rm -rf "$LIB.tmp"
    JAVA_HOME="$(java_home)" mvn "${args[@]}" >&2 || die "Maven could not resolve cassandra-all $VERSION"
  fi
  [ -f "$LIB.tmp/cassandra-all-$VERSION.jar" ] || die "cassandra-all-$VERSION.jar missing after the Maven run"
  rm -rf "$LIB" "$HOME_DIR/cds-$VERSION-"*.jsa* && mv "$LIB.tmp" "$LIB" && touch "$LIB/.complete"
  log "$(ls "$LIB"/*.jar | wc -l) jars in $LIB ($(( $(date +%s) - started ))s)"
}

node_ip() { echo "$NET.$1"; }
node_dir() { echo "$RUN/node$1"; }
pid_file() { echo "$(node_dir "$1")/cassandra.pid"; }
jmx_port() { echo $((JMX_BASE + $1)); }
nodes_in_cluster() { cat "$RUN/nodes" 2>/dev/null || echo 1; }

answers() { # does node N accept TCP connections on its CQL port?
  timeout 2 bash -c "exec 3<>/dev/tcp/$(node_ip "$1")/$PORT" 2>/dev/null
}

is_node_jvm() { # pid, node: is this pid the JVM of that node (not a recycled pid)?
  grep -qzxF -- "-Dcassandra.config=file://$(node_dir "$2")/cassandra.yaml" "/proc/$1/cmdline" 2>/dev/null
}

running_pid() { # the pid file's JVM of node N, if alive
  local f p; f="$(pid_file "$1")"
  [ -f "$f" ] || return 1
  p="$(cat "$f")"
  [ -n "$p" ] && is_node_jvm "$p" "$1" && echo "$p"
}

node_pids() { # every live JVM of node N: the pid file's plus any orphan found in /proc
  local key="-Dcassandra.config=file://$(node_dir "$1")/cassandra.yaml"
  { running_pid "$1" || true
    # (the key comes through -f so that this grep does not find itself)
    grep -lzxF -f <(echo "$key") /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 || true
  } | sort -u
}

write_config() { # node, nodes
  local n="$1" nodes="$2" dir; dir="$(node_dir "$n")"
  mkdir -p "$dir/data" "$dir/commitlog" "$dir/saved_caches" "$dir/hints" "$dir/cdc_raw" "$dir/logs" "$dir/triggers"
  local token_line="# one random token (single node)"
  if [ "$nodes" -gt 1 ]; then token_line="initial_token: ${TOKENS[$((n - 1))]}"; fi
  cat > "$dir/cassandra.yaml" <<YAML
# Written by infra/cassandra/cassandra.sh; rewritten at every start.
cluster_name: numrep-test
num_tokens: 1
$token_line
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$(node_ip 1):$STORAGE_PORT"
listen_address: $(node_ip "$n")
rpc_address: $(node_ip "$n")
storage_port: $STORAGE_PORT
native_transport_port: $PORT
start_native_transport: true
data_file_directories:
  - $dir/data
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
cdc_raw_directory: $dir/cdc_raw
# Batch sync: a write is acknowledged only after the commit log section holding it is
# synced. With periodic sync (the default) a killed node loses up to a period of
# acknowledged writes: replay stops at the last sync marker, even though the bytes sat
# in the page cache (seen here: "0 replayed mutations" after a SIGKILL 1-3 s after the
# writes). A sync costs about 0.3 ms on this disk, shared by the writes waiting for it.
commitlog_sync: batch
commitlog_segment_size: 32MiB
commitlog_total_space: 1024MiB
auto_bootstrap: false
auto_snapshot: false
# Before opening CQL a node waits for connections to its known peers (default 10 s, the
# whole 10 s when they are down, e.g. node 1 of a stopped cluster starting first).
block_for_peers_timeout_in_secs: 2
# A small (2-core) test machine.
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 4
concurrent_materialized_view_writes: 2
concurrent_compactors: 1
memtable_flush_writers: 1
compaction_throughput: 64MiB/s
native_transport_max_threads: 32
# LWTs (label-id de-duplication) and batches on a small machine.
cas_contention_timeout: 2000ms
write_request_timeout: 4000ms
read_request_timeout: 4000ms
batch_size_warn_threshold: 64KiB
batch_size_fail_threshold: 640KiB
YAML
  cat > "$dir/logback.xml" <<XML
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>$dir/logs/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>$dir/logs/system.log.%i.zip</fileNamePattern>
      <minIndex>1</minIndex><maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>20MB</maxFileSize>
    </triggeringPolicy>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
XML
}

cds_archive() { # the AppCDS archive of this Cassandra version on this JDK build
  local jh rel; jh="$(java_home)"
  rel="$(sed -n 's/^JAVA_RUNTIME_VERSION="\(.*\)"/\1/p' "$jh/release" 2>/dev/null | tr -c 'A-Za-z0-9.\n-' '_')"
  echo "$HOME_DIR/cds-$VERSION-java${rel:-unknown}.jsa"
}

cds_flags() { # node: use the class-data-sharing archive, or have node 1 write it when it stops
  [ "${NUMREP_CASSANDRA_CDS:-1}" = 1 ] || return 0
  local n="$1" jsa; jsa="$(cds_archive)"
  # jamm is a -javaagent: CDS needs AllowArchivingWithJavaAgent (a diagnostic flag) for it.
  if [ -s "$jsa" ]; then
    printf '%s\n' -XX:+UnlockDiagnosticVMOptions -XX:+AllowArchivingWithJavaAgent -XX:SharedArchiveFile="$jsa"
  elif [ "$n" = 1 ]; then
    printf '%s\n' -XX:+UnlockDiagnosticVMOptions -XX:+AllowArchivingWithJavaAgent \
      -XX:ArchiveClassesAtExit="$jsa.tmp" -Xlog:cds=error
  fi
}

module_flags() { # Java 17 module access that Cassandra (and its tools) need: conf/jvm17-*.options
  local ex flags=()
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

jvm_flags() { # node
  local n="$1" dir; dir="$(node_dir "$n")"
  local jamm; jamm="$(ls "$LIB"/jamm-*.jar | head -1)"
  local flags=(
    # heap, GC: conf/jvm17-server.options (G1) and conf/jvm-server.options
    -Xms"$HEAP" -Xmx"$HEAP" -Xss256k
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1RSetUpdatingPauseTimePercent=5
    -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
    -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$dir/logs" -XX:+ExitOnOutOfMemoryError
    -XX:ErrorFile="$dir/logs/hs_err_%p.log"
    -Xlog:gc:file="$dir/logs/gc.log":time,uptime:filecount=2,filesize=10m
    -javaagent:"$jamm"
    -Djava.net.preferIPv4Stack=true
    -Dio.netty.tryReflectionSetAccessible=true -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
    -Dchronicle.analytics.disable=true
    -Djdk.attach.allowAttachSelf=true
    # where things are
    -Dcassandra.config="file://$dir/cassandra.yaml"
    -Dlogback.configurationFile="$dir/logback.xml"
    -Dcassandra.logdir="$dir/logs" -Dcassandra.storagedir="$dir" -Dcassandra.triggers_dir="$dir/triggers"
    -Dcassandra.jmx.local.port="$(jmx_port "$n")"
    -Dcassandra-foreground=yes
    # faster start of a test node
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    # A seed restarted while its known peers are down waits RING_DELAY (30 s) in the gossip
    # shadow round before it gives up on them; 5 s is plenty on loopback.
    -Dcassandra.ring_delay_ms=5000
  )
  # Not -Dcassandra.superuser_setup_delay_ms=0: the role set-up task is rescheduled with that
  # delay while a peer is down, so 0 makes a busy loop (125,000 log lines a minute, a core).
  # -Dcassandra.unsafesystem=true (no commit log for system tables) is NOT the default: a node
  # SIGKILLed after a schema change comes back without that schema and drops the replayed
  # mutations of its tables. Opt in for throw-away single nodes only.
  if [ "${NUMREP_CASSANDRA_UNSAFE_SYSTEM:-0}" = 1 ]; then flags+=(-Dcassandra.unsafesystem=true); fi
  # Extra JVM flags, split on spaces (e.g. NUMREP_CASSANDRA_JVM_OPTS="-Xlog:gc*").
  if [ -n "${NUMREP_CASSANDRA_JVM_OPTS:-}" ]; then read -r -a extra <<< "$NUMREP_CASSANDRA_JVM_OPTS"; flags+=("${extra[@]}"); fi
  mapfile -t -O "${#flags[@]}" flags < <(module_flags)
  mapfile -t -O "${#flags[@]}" flags < <(cds_flags "$n")
  printf '%s\n' "${flags[@]}"
}

wait_ready() { # node, started-at (epoch s)
  local n="$1" started="$2" dir; dir="$(node_dir "$n")"
  while ! answers "$n"; do
    if ! running_pid "$n" >/dev/null; then
      tail -n 40 "$dir/logs/stdout.log" "$dir/logs/system.log" >&2 2>/dev/null || true
      die "node $n exited during start-up (logs in $dir/logs)"
    fi
    if [ $(( $(date +%s) - started )) -ge "$TIMEOUT" ]; then
      tail -n 40 "$dir/logs/system.log" >&2 2>/dev/null || true
      die "node $n did not accept CQL within ${TIMEOUT}s (still running; logs in $dir/logs)"
    fi
    sleep 0.5
  done
}

start_node() { # node, nodes
  local n="$1" nodes="${2:-1}" dir pid; dir="$(node_dir "$n")"
  [ "$n" -ge 1 ] && [ "$n" -le "$nodes" ] || die "node $n is not part of this $nodes-node cluster"
  if pid="$(running_pid "$n")"; then
    if answers "$n"; then say "node $n already running (pid $pid) and answering on $(node_ip "$n"):$PORT"; return; fi
    log "node $n is running (pid $pid) but not answering yet: waiting"
    local t0; t0=$(date +%s); wait_ready "$n" "$t0"
    say "node $n ready on $(node_ip "$n"):$PORT after waiting $(( $(date +%s) - t0 ))s"; return
  fi
  if answers "$n"; then die "$(node_ip "$n"):$PORT already answers but not from this node (another Cassandra? see NUMREP_CASSANDRA_HOME, _NET, _PORT)"; fi
  fetch
  write_config "$n" "$nodes"
  local jh; jh="$(java_home)"
  local flags; mapfile -t flags < <(jvm_flags "$n")
  local started; started=$(date +%s)
  rm -f "$(pid_file "$n")"
  echo "=== start $(date -Is)" >> "$dir/logs/stdout.log"
  # setsid: the node outlives this shell and ignores its terminal's signals; the inner shell
  # writes its own pid (which exec hands to java) so the pid file is right even if setsid forks.
  # Cassandra calls mlockall() at start-up; as root that faults in and pins the whole heap
  # (seconds on a 2-core machine, and 1 GiB pinned per node). Test nodes drop CAP_IPC_LOCK so
  # the call fails harmlessly ("Unable to lock JVM memory"); NUMREP_CASSANDRA_MLOCK=1 keeps it.
  local wrap=()
  if [ "${NUMREP_CASSANDRA_MLOCK:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    wrap=(setpriv --bounding-set=-ipc_lock --inh-caps=-ipc_lock)
  fi
  # All redirections apply to the whole background job and every step execs the next, so no
  # shell is left holding this script's stdout/stderr (a caller reading them would never see EOF).
  ( cd "$dir" && exec setsid bash -c 'echo $$ > "$0"; exec "$@"' "$(pid_file "$n")" \
      ${wrap[@]+"${wrap[@]}"} "$jh/bin/java" "${flags[@]}" -cp "$LIB/*" org.apache.cassandra.service.CassandraDaemon
  ) </dev/null >>"$dir/logs/stdout.log" 2>&1 &
  local i; for i in $(seq 50); do [ -s "$(pid_file "$n")" ] && break; sleep 0.1; done
  wait_ready "$n" "$started"
  say "node $n ready on $(node_ip "$n"):$PORT in $(( $(date +%s) - started ))s"
}

start() {
  local nodes=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) nodes="${2:?--nodes needs a number}"; shift 2 ;;
      --nodes=*) nodes="${1#--nodes=}"; shift ;;
      *) die "start: unknown argument $1 (use --nodes 1|3)" ;;
    esac
  done
  [ "$nodes" = 1 ] || [ "$nodes" = 3 ] || die "--nodes must be 1 or 3"
  if [ "$nodes" = 3 ] && [ "$PORT" != 9042 ]; then die "the 3-node cluster uses port 9042 on $NET.1-3"; fi
  local previous="$RUN/nodes"
  if [ -f "$previous" ] && [ "$(cat "$previous")" != "$nodes" ]; then
    log "switching from $(cat "$previous") to $nodes node(s): stopping and wiping the old test data"
    wipe
  fi
  mkdir -p "$RUN" && echo "$nodes" > "$RUN/nodes"
  fetch
  local all_started; all_started=$(date +%s)
  local n
  # ccm's order: the seed (node 1) first, then the others one after the other.
  for n in $(seq 1 "$nodes"); do start_node "$n" "$nodes"; done
  if [ "$nodes" -gt 1 ]; then say "$nodes nodes ready in $(( $(date +%s) - all_started ))s"; fi
}

stop_nodes() { # node...: SIGTERM all at once (Cassandra drains), SIGKILL after STOP_TIMEOUT
  local n p pids=() nodes=() waited=0 alive killed=0
  for n in "$@"; do
    while read -r p; do if [ -n "$p" ]; then pids+=("$p"); nodes+=("$n"); fi; done < <(node_pids "$n")
  done
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    kill -CONT "${pids[@]}" 2>/dev/null || true  # a paused node (cassandra.sh pause) handles SIGTERM only once resumed
    while :; do
      alive=()
      for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then alive+=("$p"); fi; done
      [ ${#alive[@]} -gt 0 ] || break
      if [ "$waited" -ge $((STOP_TIMEOUT * 2)) ]; then
        log "pid(s) ${alive[*]} did not stop in ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "${alive[@]}" 2>/dev/null || true; killed=1
      fi
      sleep 0.5; waited=$((waited + 1))
    done
  fi
  for n in "$@"; do rm -f "$(pid_file "$n")"; done
  # A node 1 started without a CDS archive wrote one as it exited: keep it if it is whole.
  local jsa; jsa="$(cds_archive)"
  if [ "$killed" = 1 ]; then rm -f "$jsa.tmp"
  elif [ -s "$jsa.tmp" ] && ! node_pids 1 | grep -q .; then mv -f "$jsa.tmp" "$jsa"; log "class-data-sharing archive saved: $jsa"; fi
  if [ ${#pids[@]} -gt 0 ]; then say "node(s) ${nodes[*]} stopped in $(( waited / 2 ))s"; else say "no node running"; fi
}

stop() {
  stop_nodes 1 2 3
}

kill_node() {
  local n="${1:?usage: cassandra.sh kill NODE}" pids p
  pids="$(node_pids "$n" | xargs)"
  [ -n "$pids" ] || die "node $n is not running"
  # shellcheck disable=SC2086
  kill -KILL $pids
  for p in $pids; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  rm -f "$(pid_file "$n")"
  say "node $n killed (SIGKILL, pid $pids)"
}

signal_node() { # SIGNAL WHAT NODE: send a signal to one running node's process(es)
  local sig="$1" what="$2" n="${3:?usage: cassandra.sh pause|resume NODE}" pids
  pids="$(node_pids "$n" | xargs)"
  [ -n "$pids" ] || die "node $n is not running"
  # shellcheck disable=SC2086
  kill "-$sig" $pids
  say "node $n $what (SIG$sig, pid $pids)"
}

status() {
  local n any=1 nodes pid; nodes="$(nodes_in_cluster)"
  for n in $(seq 1 "$nodes"); do
    if pid="$(running_pid "$n")"; then
      any=0
      if answers "$n"; then echo "node $n: running (pid $pid), answers CQL on $(node_ip "$n"):$PORT, JMX $(jmx_port "$n")"
      else echo "node $n: running (pid $pid), not answering on $(node_ip "$n"):$PORT"; fi
    else
      echo "node $n: not running"
    fi
  done
  [ "$any" = 0 ] || return 3
}

nodetool() { # [--node N] ARGS...
  local jh node=1; jh="$(java_home)"
  if [ "${1:-}" = "--node" ]; then node="${2:?--node needs a number}"; shift 2; fi
  [ -f "$LIB/.complete" ] || die "no jars yet: run cassandra.sh fetch"
  mkdir -p "$RUN"
  # JMX local mode listens on 127.0.0.1 whatever the node's address.
  local flags; mapfile -t flags < <(module_flags)
  "$jh/bin/java" "${flags[@]}" -Xmx256m -XX:+UseSerialGC -Dcassandra.storagedir="$RUN" -Dcassandra.logdir="$RUN" \
    -Dlogback.configurationFile="$HERE/nodetool-logback.xml" \
    -cp "$LIB/*" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$(jmx_port "$node")" "$@"
}

wipe() {
  stop
  rm -rf "$RUN"
  log "data wiped ($RUN)"
}

case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  kill) kill_node "${2:-}" ;;
  pause) signal_node STOP paused "${2:-}" ;;
  resume) signal_node CONT resumed "${2:-}" ;;
  start-node) start_node "${2:?usage: cassandra.sh start-node NODE}" "$(nodes_in_cluster)" ;;
  status) status ;;
  nodetool) shift; nodetool "$@" ;;
  wipe) wipe ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
