#!/usr/bin/env bash
# Prosody beside confianza-server, in one run on one machine: same clients, same messages,
# same payload, both servers as their own processes on 127.0.0.1, server CPU from /proc.
#
#   crates/server/bench/prosody.sh                       # 100 clients, 200 000 messages, 256 B
#   CLIENTS=1000 MESSAGES=200000 crates/server/bench/prosody.sh
#
# Needs: Debian's prosody (installed with apt-get when missing), python3 (standard library
# only), and a release build: cargo build --release -p confianza-server (or B=path/to/binary).
#
# Prosody gets a throwaway configuration in a temporary directory: c2s on 127.0.0.1 only, no
# s2s, no HTTP, plaintext SASL allowed (loopback), accounts written straight into its internal
# storage (authentication "internal_plain"), the epoll backend, and Debian's default module
# list minus what needs the network or TLS, mod_limits (it would throttle the load), mod_posix
# (loaded anyway; -F keeps Prosody in the foreground) and the invite/admin modules. mod_offline is loaded, as by default.
set -euo pipefail

CLIENTS=${CLIENTS:-100}
MESSAGES=${MESSAGES:-200000}
PAYLOAD=${PAYLOAD:-256}
WINDOW=${WINDOW:-16}
XMPP_PORT=${XMPP_PORT:-15222}
NOISE_PORT=${NOISE_PORT:-17443}
HTTP_PORT=${HTTP_PORT:-18443}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

if ! command -v prosody > /dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y prosody > /dev/null
fi
bench_init confianza-vs-prosody

# ---- Prosody ---------------------------------------------------------------------------
mkdir -p "$work/prosody/data/localhost/accounts"
cat > "$work/prosody/prosody.cfg.lua" <<EOF
-- Throwaway benchmark configuration: loopback only, no TLS, no s2s, no HTTP.
run_as_root = true
certificates = "$work/prosody"
pidfile = "$work/prosody/prosody.pid"
data_path = "$work/prosody/data"
network_backend = "epoll"
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { $XMPP_PORT }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
log = { warn = "$work/prosody/prosody.log" }
modules_enabled = {
    "disco"; "roster"; "saslauth"; "blocklist"; "bookmarks"; "carbons"; "pep"; "private";
    "smacks"; "vcard4"; "vcard_legacy"; "csi_simple"; "ping"; "time"; "uptime"; "version";
}
modules_disabled = { "s2s" }
VirtualHost "localhost"
EOF
# Accounts straight into internal storage: the online clients and the offline recipients.
for i in $(seq 0 $((CLIENTS - 1))); do
    for user in "load$i" "loadoff$i"; do
        printf 'return {\n\t["password"] = "loadtest";\n};\n' \
            > "$work/prosody/data/localhost/accounts/$user.dat"
    done
done
prosody -F --config "$work/prosody/prosody.cfg.lua" > "$work/prosody/stdout.log" 2>&1 &
prosody_pid=$!
pids+=("$prosody_pid")
wait_for_port "$XMPP_PORT"

echo "== Prosody $(dpkg-query -W -f '${Version}' prosody): relay"
python3 "$here/xmpp_load.py" --port "$XMPP_PORT" --clients "$CLIENTS" --messages "$MESSAGES" \
    --payload "$PAYLOAD" --window "$WINDOW" --server-pid "$prosody_pid"
echo "== Prosody: offline store"
python3 "$here/xmpp_load.py" --port "$XMPP_PORT" --clients "$CLIENTS" --messages "$MESSAGES" \
    --payload "$PAYLOAD" --window "$WINDOW" --server-pid "$prosody_pid" --offline
kill "$prosody_pid"
wait "$prosody_pid" 2> /dev/null || true
pids=()

# ---- confianza-server ------------------------------------------------------------------
confianza_start "$NOISE_PORT" "$HTTP_PORT"

echo "== confianza-server: relay"
confianza_loadtest --clients "$CLIENTS" --messages "$MESSAGES" --payload "$PAYLOAD" --window "$WINDOW"
echo "== confianza-server: offline store"
confianza_loadtest --clients "$CLIENTS" --messages "$MESSAGES" --payload "$PAYLOAD" --window "$WINDOW" --offline
