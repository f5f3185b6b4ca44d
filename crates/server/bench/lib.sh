# Shared by the benchmark scripts of this folder (sourced, not run): finding the release
# binary, a throwaway work directory cleaned up on exit, waiting for a port, and starting and
# stopping a confianza-server on a fresh data directory.
#
# A script sets -euo pipefail, sources this file, and calls bench_init first.

bench_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The release binary, built beforehand (the scripts build nothing: a build would compete for
# the cores being measured). $B or $CONFIANZA_SERVER name it; otherwise it is looked for in
# $CARGO_TARGET_DIR, then in the workspace's target folder.
bench_server_bin() {
    local target_dir=${CARGO_TARGET_DIR:-$bench_here/../../../target}
    local bin=${B:-${CONFIANZA_SERVER:-$target_dir/release/confianza-server}}
    if [ ! -x "$bin" ]; then
        echo "no release binary at $bin: cargo build --release -p confianza-server, or set B" >&2
        return 1
    fi
    printf '%s\n' "$bin"
}

# bench_init NAME: sets server_bin and work (a fresh directory /tmp/NAME.XXXXXX); on exit,
# every process in the pids array is stopped and the directory removed.
bench_init() {
    server_bin=$(bench_server_bin)
    work=$(mktemp -d "/tmp/$1.XXXXXX")
    pids=()
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
    wait 2> /dev/null || true
    rm -rf "$work"
}

# wait_for_port PORT: until something accepts connections on 127.0.0.1:PORT (10 s at most).
wait_for_port() {
    for _ in $(seq 1 200); do
        if (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# confianza_start NOISE_PORT HTTP_PORT: a fresh data directory ($data, no passphrase) and a
# server on it, its log in $work/confianza.log; sets server_pid.
confianza_start() {
    data="$work/confianza"
    "$server_bin" --data "$data" init --no-passphrase --org "Bench Org" \
        --name chat.example.org --domain example.org > /dev/null
    "$server_bin" --data "$data" run --listen "127.0.0.1:$1" --http "127.0.0.1:$2" \
        --log warn > "$work/confianza.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    noise_port=$1
    wait_for_port "$noise_port"
}

# confianza_loadtest ARGS…: the load generator against the server of confianza_start.
confianza_loadtest() {
    "$server_bin" --data "$data" loadtest --server "127.0.0.1:$noise_port" \
        --server-pid "$server_pid" "$@"
}

# confianza_stop: stops the server of confianza_start gracefully and waits for it.
confianza_stop() {
    kill "$server_pid" 2> /dev/null || true
    wait "$server_pid" 2> /dev/null || true
    local kept=()
    local pid
    for pid in "${pids[@]}"; do [ "$pid" = "$server_pid" ] || kept+=("$pid"); done
    pids=("${kept[@]}")
}
