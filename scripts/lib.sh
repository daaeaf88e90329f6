# Shell helpers shared by scripts/services.sh and scripts/prometheus.sh (sourced, not run).
# The caller defines log and die (with its own prefix) and HOST.

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {  # apt_install PACKAGE... (one apt-get update per script run)
    command -v apt-get >/dev/null 2>&1 || die "need to install $* but apt-get is not available"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

port_open() {  # port_open PORT -> 0 when something accepts TCP connections on $HOST:PORT
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" >/dev/null 2>&1
}

alive() {  # alive PID -> the process exists and is not a zombie
    kill -0 "$1" 2>/dev/null || return 1
    # a killed daemon whose parent does not reap it lingers as a zombie: count it as dead
    [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

pid_from() {  # pid_from PIDFILE -> prints the pid if the file exists and the process lives
    local f="$1" pid
    [ -s "$f" ] || return 1
    pid="$(tr -dc '0-9' <"$f")"
    [ -n "$pid" ] && alive "$pid" || return 1
    printf '%s' "$pid"
}

pid_matches() {  # pid_matches PID TEXT -> the process' command line contains TEXT (pids get reused)
    [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

terminate() {  # terminate PID GRACE_SECONDS -> TERM, then KILL if still alive after the grace
    local pid="$1" grace="$2" i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    if alive "$pid"; then
        log "pid $pid still alive after ${grace}s, sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    fi
}

tail_log() {  # tail_log FILE...
    local f
    for f in "$@"; do
        [ -f "$f" ] || continue
        printf -- '----- last lines of %s -----\n' "$f" >&2
        tail -n 40 "$f" >&2 || true
    done
}

take_lock() {  # take_lock DIR TIMEOUT: serialise start/stop calls (daemons are started with 9>&-)
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$1/.lock"
        flock -w "$2" 9 || die "could not take $1/.lock"
    fi
}
