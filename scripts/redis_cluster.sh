#!/usr/bin/env bash
# A local Redis Cluster for the cluster tests and `cxstream bench --redis-cluster`: 3 primaries
# and 3 replicas of Debian's redis-server on 127.0.0.1, no Docker.
#
#   bash scripts/redis_cluster.sh start     # idempotent: a cluster that answers is reused
#   bash scripts/redis_cluster.sh status
#   bash scripts/redis_cluster.sh stop
#
# Nodes listen on CX_REDIS_CLUSTER_PORT .. +5 (7001-7006); the first three start as primaries
# (slots split three ways by `redis-cli --cluster create`), each of the others replicates one.
# Every node keeps an AOF (appendfsync everysec), so a killed primary's replica that is
# promoted has what was acknowledged up to its replication offset.
#
# Environment:
#   CX_REDIS_CLUSTER_PORT    (7001)   first node's port
#   CX_SERVICES_STATE        (<repo>/.services)   pids, logs, data (under redis-cluster/)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
HOST=127.0.0.1
FIRST_PORT="${CX_REDIS_CLUSTER_PORT:-7001}"
NODES=6
STATE_DIR="${CX_SERVICES_STATE:-$REPO_DIR/.services}/redis-cluster"

log() { printf '[redis-cluster] %s\n' "$*" >&2; }
die() { printf '[redis-cluster] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

ports() { seq "$FIRST_PORT" $((FIRST_PORT + NODES - 1)); }

cluster_ok() {  # the cluster answers, all slots are served, our 6 nodes are the ones known
    local info nodes port
    info="$(redis-cli -h "$HOST" -p "$FIRST_PORT" cluster info 2>/dev/null)" || return 1
    nodes="$(redis-cli -h "$HOST" -p "$FIRST_PORT" cluster nodes 2>/dev/null)" || return 1
    grep -q '^cluster_state:ok' <<<"$info" && grep -q "^cluster_known_nodes:$NODES" <<<"$info" \
        && [ "$(grep -c ' slave ' <<<"$nodes")" -eq $((NODES / 2)) ] || return 1
    # a node restarted with another cluster's nodes.conf leaves a "noaddr" entry behind
    ! grep -Eq 'noaddr|fail' <<<"$nodes" || return 1
    for port in $(ports); do grep -q " $HOST:$port@" <<<"$nodes" || return 1; done
}

start_node() {  # start_node PORT
    local port="$1" dir="$STATE_DIR/$1"
    if redis-cli -h "$HOST" -p "$port" ping >/dev/null 2>&1; then
        return 0
    fi
    mkdir -p "$dir"
    redis-server --port "$port" --bind "$HOST" --dir "$dir" --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --appendonly yes --appendfsync everysec --save "" \
        --protected-mode yes --maxmemory 512mb --maxmemory-policy noeviction >/dev/null
    for _ in $(seq 1 50); do
        redis-cli -h "$HOST" -p "$port" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "node $port did not answer; see $dir/redis.log"
}

start() {
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    if cluster_ok; then
        log "cluster on $HOST:$FIRST_PORT.. already up"
        return 0
    fi
    local port
    for port in $(ports); do start_node "$port"; done
    # nodes restarted after a stop or a failover test rejoin the cluster from nodes.conf
    for _ in $(seq 1 100); do
        cluster_ok && { log "cluster on $HOST:$FIRST_PORT.. up again"; return 0; }
        sleep 0.2
    done
    # a half-made cluster (or none): every node from scratch
    local addresses=()
    for port in $(ports); do
        redis-cli -h "$HOST" -p "$port" flushall >/dev/null
        redis-cli -h "$HOST" -p "$port" cluster reset hard >/dev/null
        addresses+=("$HOST:$port")
    done
    log "joining ${addresses[*]} (3 primaries, 1 replica each)"
    redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
    for _ in $(seq 1 100); do
        cluster_ok && { log "cluster ok"; return 0; }
        sleep 0.2
    done
    die "the cluster did not reach cluster_state:ok; see $STATE_DIR/*/redis.log"
}

stop() {
    local port pid
    for port in $(ports); do
        if pid="$(pid_from "$STATE_DIR/$port/redis.pid")" && pid_matches "$pid" ":$port"; then
            log "stopping node $port (pid $pid)"
            kill "$pid"
        fi
    done
    rm -rf "$STATE_DIR"
}

status() {
    if cluster_ok; then
        redis-cli -h "$HOST" -p "$FIRST_PORT" cluster nodes | awk '{print $2, $3}'
    else
        log "no cluster on $HOST:$FIRST_PORT"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status" ;;
esac
