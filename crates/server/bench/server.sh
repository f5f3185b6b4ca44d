#!/usr/bin/env bash
# The messaging server's speed goals (issue 3) in one command: a fresh data directory and
# server, then the load generator's relay run, its offline-store run and its idle-connection
# run against it, `uptime` before and after, and one table of the results.
#
#   crates/server/bench/server.sh
#   B=/path/to/confianza-server NOISE_PORT=17530 HTTP_PORT=18530 crates/server/bench/server.sh
#   CLIENTS=1000 RELAY_MESSAGES=100000 crates/server/bench/server.sh
#
# Builds nothing: it uses $B (or $CONFIANZA_SERVER, or $CARGO_TARGET_DIR/release/…); build
# first with cargo build --release -p confianza-server. The server and the load generator share
# the machine's cores, so note the load average it prints: other work on the machine shows up
# in the numbers. Server CPU per message (utime + stime from /proc/PID/stat) is the steadier
# figure; the load generator prints its own beside it.
set -euo pipefail

CLIENTS=${CLIENTS:-100}
RELAY_MESSAGES=${RELAY_MESSAGES:-100000}
OFFLINE_MESSAGES=${OFFLINE_MESSAGES:-100000}
CONNECTIONS=${CONNECTIONS:-10000}
HOLD_SECS=${HOLD_SECS:-10}
PAYLOAD=${PAYLOAD:-256}
WINDOW=${WINDOW:-16}
NOISE_PORT=${NOISE_PORT:-17443}
HTTP_PORT=${HTTP_PORT:-18443}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

# Each held connection is a file descriptor in the server and one in the load generator
# (separate processes); the rest is headroom for the database, listeners and logs.
descriptors=$((CONNECTIONS + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$descriptors" ]; then
    echo "ulimit -Hn is $hard; $CONNECTIONS connections need $descriptors descriptors" >&2
    exit 1
fi
ulimit -n "$descriptors"

bench_init confianza-server-bench
echo "before: $(uptime)"
confianza_start "$NOISE_PORT" "$HTTP_PORT"

echo "== relay: $CLIENTS clients, $RELAY_MESSAGES messages"
confianza_loadtest --clients "$CLIENTS" --messages "$RELAY_MESSAGES" --payload "$PAYLOAD" \
    --window "$WINDOW" | tee "$work/relay.txt"
echo "== offline store: $CLIENTS senders, $CLIENTS offline recipients, $OFFLINE_MESSAGES messages"
confianza_loadtest --clients "$CLIENTS" --messages "$OFFLINE_MESSAGES" --payload "$PAYLOAD" \
    --window "$WINDOW" --offline | tee "$work/offline.txt"
echo "== idle connections: $CONNECTIONS for $HOLD_SECS s"
confianza_loadtest --connections "$CONNECTIONS" --duration "$HOLD_SECS" \
    | tee "$work/connections.txt"

confianza_stop
echo "after: $(uptime)"

# field FILE SED-EXPRESSION: the first match of the expression (with -n … p), or "-".
field() {
    local value
    value=$(sed -n "$2" "$1" | head -n 1)
    printf '%s\n' "${value:--}"
}
accepted='s/^accepted (Sent: committed, or acknowledged live): .* = \([0-9]*\) msg\/s$/\1/p'
server_cpu='s/^CPU (server process): .* = \([0-9.]*\) µs per accepted message$/\1 µs/p'
own_cpu='s/^CPU (load generator process): .* = \([0-9.]*\) µs per accepted message$/\1 µs/p'
r="$work/relay.txt"
o="$work/offline.txt"
c="$work/connections.txt"

echo
echo "| what (payload $PAYLOAD B, window $WINDOW) | result | goal |"
echo "| --- | --- | --- |"
echo "| relay, $CLIENTS clients: accepted msg/s (Sent: committed or acknowledged live) | $(field "$r" "$accepted") | ≥ 46 500 |"
echo "| relay: delivered msg/s | $(field "$r" 's/^delivered: .* (\([0-9]*\) msg\/s).*/\1/p') | |"
echo "| relay: delivered / accepted, receipts | $(field "$r" 's/^delivered: \([0-9]* of [0-9]*\) .*receipts back for \([0-9]*\) messages$/\1, \2/p') | all |"
echo "| relay: delivery latency p50 / p99 | $(field "$r" 's/^delivery latency (send → delivered): p50 \(.*\) p99 \(.*\)$/\1 \/ \2/p') | |"
echo "| relay: server CPU per message | $(field "$r" "$server_cpu") | ≤ 15 µs |"
echo "| relay: load generator CPU per message | $(field "$r" "$own_cpu") | |"
echo "| offline, $CLIENTS → $CLIENTS: stored msg/s | $(field "$o" "$accepted") | ≥ 50 000 |"
echo "| offline: server CPU per message | $(field "$o" "$server_cpu") | |"
echo "| offline: load generator CPU per message | $(field "$o" "$own_cpu") | |"
echo "| idle connections still served after $HOLD_SECS s | $(field "$c" 's/^connections: \([0-9]* of [0-9]*\) still served.*/\1/p') | 10 000 |"
echo "| idle: server CPU while $CONNECTIONS connections idle | $(field "$c" 's/^CPU while idle (server process): \([0-9.]* s\) over.*/\1/p') | |"
