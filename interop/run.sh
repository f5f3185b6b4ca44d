#!/usr/bin/env bash
# Runs the interop matrix (see README.md). JS-only pairs always; the pairs with the Rust peer when
# CONFIANZA_PEER is the path of a built `confianza-peer` binary. Exits non-zero if any check failed.
#   CONFIANZA_PEER=/var/tmp/confianza-target/debug/confianza-peer bash interop/run.sh
# Env: SEED (default 42), MESSAGES (default 100), DRIVER_ARGS (extra driver flags, e.g. --verbose).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if [ ! -d node_modules/@signalapp/libsignal-client ] || [ ! -d node_modules/libsignal ]; then
  npm ci --no-audit --no-fund --loglevel=error || { echo "npm ci failed"; echo "0 passed, 1 failed"; exit 1; }
fi

seed="${SEED:-42}"
messages="${MESSAGES:-100}"
client="node $here/peers/libsignal-client.mjs"
jsnode="node $here/peers/libsignal-node.mjs"

total_pass=0
total_fail=0
total_skip=0
rows=()

pair() { # label, driver args...
  local label="$1"
  shift
  printf '\n=== %s\n' "$label"
  local out rc
  out="$(node "$here/driver.mjs" --seed "$seed" --messages "$messages" ${DRIVER_ARGS:-} "$@" 2>&1)"
  rc=$?
  printf '%s\n' "$out"
  local line p f s
  line="$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n1)"
  s="$(printf '%s\n' "$out" | grep -E '^[0-9]+ skipped$' | tail -n1 | cut -d' ' -f1)"
  if [ -z "$line" ]; then
    p=0
    f=1
  else
    p="${line%% passed*}"
    f="${line#*, }"
    f="${f%% failed}"
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
  total_skip=$((total_skip + ${s:-0}))
  rows+=("$(printf '%-62s %4s passed %3s failed %3s skipped' "$label" "$p" "$f" "${s:-0}")")
}

pair "libsignal-client(kyber) <-> libsignal-client(no-kyber) [+C client]" \
  --a "$client" --b "$client --no-kyber" --c "$client" --scenario all
pair "libsignal-client(kyber) <-> libsignal-client(kyber)" \
  --a "$client" --b "$client" --scenario setup,reorder,replay,replaced
pair "libsignal-client(no-kyber) <-> libsignal-node" \
  --a "$client --no-kyber" --b "$jsnode" --scenario all

if [ -n "${CONFIANZA_PEER:-}" ]; then
  if [ ! -x "$CONFIANZA_PEER" ]; then
    echo "CONFIANZA_PEER=$CONFIANZA_PEER is not an executable file"
    echo "$total_pass passed, $((total_fail + 1)) failed"
    exit 1
  fi
  rust="$CONFIANZA_PEER"
  pair "rust(kyber) <-> libsignal-client(kyber)" \
    --a "$rust" --b "$client" --scenario all
  pair "rust(no-kyber) <-> libsignal-client(no-kyber)" \
    --a "$rust --no-kyber" --b "$client --no-kyber" --scenario all
  pair "rust(no-kyber, 0x33) <-> libsignal-node" \
    --a "$rust --no-kyber --version-byte 0x33" --b "$jsnode" --scenario all
  pair "group: rust + libsignal-client + rust" \
    --a "$rust" --b "$client" --c "$rust" --scenario group
else
  echo
  echo "CONFIANZA_PEER unset: pairs with the Rust peer not run"
fi

printf '\n=== interop matrix (seed %s)\n' "$seed"
printf '%s\n' "${rows[@]}"
echo "$total_skip skipped"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
