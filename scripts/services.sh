#!/usr/bin/env bash
# Local backing services for cxstream development, tests and CI — no Docker needed.
#
#   bash scripts/services.sh start    # Redis + a single-node Apache Kafka 3.9.0 (KRaft)
#   bash scripts/services.sh status
#   bash scripts/services.sh stop
#
# start is idempotent: a Redis that already answers PING, or a Kafka broker that already
# answers on the port, is reused; Kafka jars are fetched once from Maven Central (with mvn,
# see scripts/kafka/pom.xml) and cached.
#
# Environment:
#   CX_REDIS_PORT              (6379)
#   CX_KAFKA_PORT              (9092)   PLAINTEXT listener, 127.0.0.1 only
#   CX_KAFKA_CONTROLLER_PORT   (9093)   KRaft controller listener
#   CX_SERVICES_STATE          (<repo>/.services)            pids, logs, data
#   CX_SERVICES_HOME           ($HOME/.cache/cxstream-services)  cached Kafka jars
#   CX_KAFKA_HEAP_OPTS         (-Xmx1G -Xms512m)
#   CX_KAFKA_START_TIMEOUT     (90)  seconds;  CX_REDIS_START_TIMEOUT (30)
set -euo pipefail

KAFKA_VERSION=3.9.0

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"

REDIS_PORT="${CX_REDIS_PORT:-6379}"
KAFKA_PORT="${CX_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${CX_KAFKA_CONTROLLER_PORT:-9093}"
HOST=127.0.0.1

STATE_DIR="${CX_SERVICES_STATE:-$REPO_DIR/.services}"
CACHE_DIR="${CX_SERVICES_HOME:-${HOME:-/root}/.cache/cxstream-services}"
LOG_DIR="$STATE_DIR/logs"

REDIS_PIDFILE="$STATE_DIR/redis.pid"
REDIS_LOG="$LOG_DIR/redis.log"
REDIS_DATA="$STATE_DIR/redis"

KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"
KAFKA_LIBS_MARKER="$KAFKA_LIBS/.complete"
KAFKA_CONF_DIR="$STATE_DIR/kafka"
KAFKA_DATA="$STATE_DIR/kafka-data"
KAFKA_PIDFILE="$STATE_DIR/kafka.pid"
KAFKA_OUT="$LOG_DIR/kafka.out"
KAFKA_SERVER_LOG="$LOG_DIR/kafka-server.log"
KAFKA_HEAP_OPTS="${CX_KAFKA_HEAP_OPTS:--Xmx1G -Xms512m}"
# readiness / smoke-test tool (kafka-tools module; kafka.admin.TopicCommand is gone in 3.9)
KAFKA_TOPIC_TOOL=org.apache.kafka.tools.TopicCommand

REDIS_START_TIMEOUT="${CX_REDIS_START_TIMEOUT:-30}"
KAFKA_START_TIMEOUT="${CX_KAFKA_START_TIMEOUT:-90}"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- helpers







stop_pid() {  # stop_pid NAME PIDFILE PATTERN GRACE_SECONDS
    local name="$1" pidfile="$2" pattern="$3" grace="$4" pid
    if ! pid="$(pid_from "$pidfile")"; then
        rm -f "$pidfile"
        log "$name: not running (nothing started by this script)"
        return 0
    fi
    if ! pid_matches "$pid" "$pattern"; then
        log "$name: pid $pid from $pidfile is not $name any more; removing the stale pidfile"
        rm -f "$pidfile"
        return 0
    fi
    log "$name: stopping pid $pid"
    terminate "$pid" "$grace"
    rm -f "$pidfile"
    log "$name: stopped"
}


prepare_state_dir() {
    mkdir -p "$STATE_DIR" "$LOG_DIR"
    # keep the state dir out of git without touching the repo's .gitignore
    [ -f "$STATE_DIR/.gitignore" ] || printf '*\n' >"$STATE_DIR/.gitignore"
}


# ---------------------------------------------------------------- redis

redis_ping() {
    command -v redis-cli >/dev/null 2>&1 || return 1
    [ "$(timeout 3 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null || true)" = "PONG" ]
}

ensure_redis_installed() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        apt_install redis-server redis-tools
    fi
    command -v redis-server >/dev/null 2>&1 || die "redis-server is still missing after apt-get install"
}

start_redis() {
    ensure_redis_installed
    if redis_ping; then
        if pid_from "$REDIS_PIDFILE" >/dev/null; then
            echo "redis ready on $HOST:$REDIS_PORT (already running)"
        else
            echo "redis ready on $HOST:$REDIS_PORT (reusing a server not started by this script)"
        fi
        return 0
    fi
    if port_open "$REDIS_PORT"; then
        die "port $HOST:$REDIS_PORT is taken by something that does not answer Redis PING; set CX_REDIS_PORT"
    fi
    mkdir -p "$REDIS_DATA"
    rm -f "$REDIS_PIDFILE"
    log "redis: starting redis-server on $HOST:$REDIS_PORT"
    if ! redis-server --daemonize yes \
        --bind "$HOST" --port "$REDIS_PORT" \
        --save "" --appendonly no \
        --dir "$REDIS_DATA" \
        --pidfile "$REDIS_PIDFILE" \
        --logfile "$REDIS_LOG" >>"$REDIS_LOG" 2>&1 9>&-; then
        tail_log "$REDIS_LOG"
        die "redis-server failed to start"
    fi
    local deadline=$((SECONDS + REDIS_START_TIMEOUT))
    until redis_ping; do
        if ((SECONDS >= deadline)); then
            tail_log "$REDIS_LOG"
            die "redis did not answer PING on $HOST:$REDIS_PORT within ${REDIS_START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    echo "redis ready on $HOST:$REDIS_PORT"
}

# ---------------------------------------------------------------- kafka

java_bin() {
    if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
        printf '%s' "$JAVA_HOME/bin/java"
    else
        command -v java
    fi
}

ensure_java() {
    if ! java_bin >/dev/null 2>&1; then
        apt_install openjdk-17-jre-headless
    fi
    java_bin >/dev/null 2>&1 || die "java is still missing"
}

pom_digest() { sha256sum "$KAFKA_POM" | cut -d' ' -f1; }

ensure_kafka_libs() {
    if [ -f "$KAFKA_LIBS_MARKER" ] && [ "$(cat "$KAFKA_LIBS_MARKER")" = "$(pom_digest)" ]; then
        return 0
    fi
    if ! command -v mvn >/dev/null 2>&1; then
        apt_install maven
    fi
    mkdir -p "$CACHE_DIR/kafka-$KAFKA_VERSION"
    local tmp="$KAFKA_LIBS.tmp.$$"
    rm -rf "$tmp"
    log "kafka: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
    # output goes to a log (Debian's mvn 3.8.7 prints stray colour codes even with -q -B)
    if ! mvn -q -B -f "$KAFKA_POM" \
        dependency:copy-dependencies -DoutputDirectory="$tmp" >"$LOG_DIR/mvn.log" 2>&1; then
        rm -rf "$tmp"
        tail_log "$LOG_DIR/mvn.log"
        die "mvn could not fetch the Kafka jars"
    fi
    [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
    pom_digest >"$tmp/.complete"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
}

write_kafka_config() {
    mkdir -p "$KAFKA_CONF_DIR" "$KAFKA_DATA"
    cat >"$KAFKA_CONF_DIR/server.properties" <<EOF
# generated by scripts/services.sh — single-node KRaft broker+controller for local dev/tests
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
# tests send 1 MB and bigger payloads
message.max.bytes=12582912
replica.fetch.max.bytes=12582912
replica.fetch.response.max.bytes=12582912
socket.request.max.bytes=104857600
num.network.threads=2
num.io.threads=4
log.retention.hours=24
log.retention.check.interval.ms=300000
EOF
    cat >"$KAFKA_CONF_DIR/log4j.properties" <<EOF
# generated by scripts/services.sh
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$KAFKA_SERVER_LOG
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel\$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
    cat >"$KAFKA_CONF_DIR/tools-log4j.properties" <<EOF
# generated by scripts/services.sh — for the CLI tools
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
    cat >"$KAFKA_CONF_DIR/tools.properties" <<EOF
# admin-client settings for the readiness probe: fail fast instead of retrying for a minute
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

kafka_tool() {  # kafka_tool MAIN_CLASS ARGS... (on the cached classpath, quiet logging)
    local main="$1"
    shift
    "$(java_bin)" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j.configuration="file:$KAFKA_CONF_DIR/tools-log4j.properties" \
        -cp "$KAFKA_LIBS/*" "$main" "$@"
}

kafka_answers() {  # a Kafka broker answers metadata requests on 127.0.0.1:$KAFKA_PORT
    timeout 30 "$(java_bin)" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j.configuration="file:$KAFKA_CONF_DIR/tools-log4j.properties" \
        -cp "$KAFKA_LIBS/*" "$KAFKA_TOPIC_TOOL" \
        --bootstrap-server "$HOST:$KAFKA_PORT" \
        --command-config "$KAFKA_CONF_DIR/tools.properties" --list >/dev/null 2>&1
}

format_kafka_storage() {
    if [ -f "$KAFKA_DATA/meta.properties" ]; then
        return 0
    fi
    local cluster_id
    if [ -s "$KAFKA_CONF_DIR/cluster-id" ]; then
        cluster_id="$(cat "$KAFKA_CONF_DIR/cluster-id")"
    else
        cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid | tail -n 1 | tr -d '[:space:]')"
        [ -n "$cluster_id" ] || die "kafka.tools.StorageTool random-uuid printed nothing"
        printf '%s\n' "$cluster_id" >"$KAFKA_CONF_DIR/cluster-id"
    fi
    log "kafka: formatting $KAFKA_DATA (cluster id $cluster_id)"
    kafka_tool kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$KAFKA_CONF_DIR/server.properties" >>"$KAFKA_OUT" 2>&1 || {
        tail_log "$KAFKA_OUT"
        die "kafka storage format failed"
    }
}

start_kafka() {
    ensure_java
    ensure_kafka_libs
    mkdir -p "$KAFKA_CONF_DIR"
    local pid=""
    pid="$(pid_from "$KAFKA_PIDFILE")" || pid=""
    if [ -n "$pid" ] && ! pid_matches "$pid" kafka.Kafka; then
        rm -f "$KAFKA_PIDFILE"
        pid=""
    fi

    if [ -z "$pid" ] && port_open "$KAFKA_PORT"; then
        # someone else's broker (docker compose, another checkout, ...)? reuse it if it is Kafka
        [ -f "$KAFKA_CONF_DIR/tools.properties" ] || write_kafka_config
        if kafka_answers; then
            echo "kafka ready on $HOST:$KAFKA_PORT (reusing a broker not started by this script)"
            return 0
        fi
        die "port $HOST:$KAFKA_PORT is taken by something that does not answer as Kafka; set CX_KAFKA_PORT"
    fi

    local how=""
    if [ -n "$pid" ]; then
        how=" (already running)"
    else
        if port_open "$KAFKA_CONTROLLER_PORT"; then
            die "controller port $HOST:$KAFKA_CONTROLLER_PORT is already taken; set CX_KAFKA_CONTROLLER_PORT"
        fi
        write_kafka_config
        format_kafka_storage
        log "kafka: starting broker+controller on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
        # setsid: own session, so the broker survives the shell / CI step that started it.
        # Started without job control, setsid execs in place and $! is the JVM's pid.
        # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of options
        setsid nohup "$(java_bin)" $KAFKA_HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -Djava.awt.headless=true \
            -Dkafka.logs.dir="$LOG_DIR" \
            -Dlog4j.configuration="file:$KAFKA_CONF_DIR/log4j.properties" \
            -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF_DIR/server.properties" \
            </dev/null >>"$KAFKA_OUT" 2>&1 9>&- &
        pid=$!
        printf '%s\n' "$pid" >"$KAFKA_PIDFILE"
    fi

    local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while :; do
        if ! alive "$pid"; then
            rm -f "$KAFKA_PIDFILE"
            tail_log "$KAFKA_OUT" "$KAFKA_SERVER_LOG"
            die "kafka exited during startup"
        fi
        if port_open "$KAFKA_PORT" && kafka_answers; then
            break
        fi
        if ((SECONDS >= deadline)); then
            tail_log "$KAFKA_OUT" "$KAFKA_SERVER_LOG"
            die "kafka did not become ready on $HOST:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s (pid $pid still running; 'services.sh stop' to clean up)"
        fi
        sleep 1
    done
    echo "kafka ready on $HOST:$KAFKA_PORT$how"
}

# ---------------------------------------------------------------- commands

cmd_start() {
    prepare_state_dir
    take_lock "$STATE_DIR" 300
    start_redis
    start_kafka
}

cmd_stop() {
    prepare_state_dir
    take_lock "$STATE_DIR" 300
    stop_pid kafka "$KAFKA_PIDFILE" kafka.Kafka 45
    stop_pid redis "$REDIS_PIDFILE" redis-server 15
}

cmd_status() {
    local pid rc=0
    if pid="$(pid_from "$REDIS_PIDFILE")" && redis_ping; then
        echo "redis: running on $HOST:$REDIS_PORT (pid $pid, started by this script)"
    elif redis_ping; then
        echo "redis: running on $HOST:$REDIS_PORT (not started by this script)"
    elif pid="$(pid_from "$REDIS_PIDFILE")"; then
        echo "redis: pid $pid alive but not answering PING on $HOST:$REDIS_PORT"
        rc=1
    else
        echo "redis: not running"
        rc=1
    fi
    if pid="$(pid_from "$KAFKA_PIDFILE")" && pid_matches "$pid" kafka.Kafka; then
        if port_open "$KAFKA_PORT"; then
            echo "kafka: running on $HOST:$KAFKA_PORT (pid $pid, started by this script)"
        else
            echo "kafka: pid $pid alive but $HOST:$KAFKA_PORT not accepting connections (starting?)"
            rc=1
        fi
    elif port_open "$KAFKA_PORT"; then
        echo "kafka: something listens on $HOST:$KAFKA_PORT (not started by this script)"
    else
        echo "kafka: not running"
        rc=1
    fi
    echo "state: $STATE_DIR   jar cache: $KAFKA_LIBS$([ -f "$KAFKA_LIBS_MARKER" ] || echo ' (empty)')"
    return "$rc"
}

usage() {
    echo "usage: $0 start|stop|status" >&2
    exit 2
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    restart) cmd_stop && cmd_start ;;
    *) usage ;;
esac
