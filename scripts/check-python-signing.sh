#!/usr/bin/env bash
# Proves docs/examples/cmdb_signed_request.py against a real master: starts
# one on free 127.0.0.1 ports under a scratch dir, adds a reader user with
# an ssh-keygen key, and signs GETs with the example, pinning the
# certificate fingerprint the master logs. Checks 200 with the right key,
# 401 with another key and a refused connection with a wrong pin.
#
#   bash scripts/check-python-signing.sh   # PY_VENV=target/py-venv by default
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${PY_VENV:-$(pwd)/target/py-venv}"
if ! "$venv/bin/python" -c 'import cryptography' 2>/dev/null; then
  python3 -m venv "$venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --quiet 'cryptography>=42' </dev/null
fi
py="$venv/bin/python"
example="$(pwd)/docs/examples/cmdb_signed_request.py"

# The binaries as built (CMDB_BIN to use others); built once if missing.
bin="${CMDB_BIN:-$(pwd)/target/debug}"
if [ ! -x "$bin/cmdb-master" ] || [ ! -x "$bin/cmdb" ]; then
  cargo build --workspace --bins --quiet </dev/null
fi

scratch="$(mktemp -d -t cmdb-pysig.XXXXXX)"
. scripts/lib.sh
master_config
clean_up_on_exit

start master "$bin/cmdb-master" -c "$scratch/master.toml"
wait_for "$scratch/master.log" "master ready"
# The log line is "API listening with TLS listen=... fingerprint=aa:bb:..."
# (perhaps with colour codes around the field name).
fp=$(sed 's/\x1b\[[0-9;]*m//g' "$scratch/master.log" |
  grep -o 'fingerprint=[0-9a-f:]*' | head -n 1 | cut -d= -f2)
if [ "${#fp}" -ne 95 ]; then
  echo "no TLS fingerprint in the master log" >&2; cat "$scratch/master.log" >&2; exit 1
fi

ssh-keygen -q -t ed25519 -N '' -C alice -f "$scratch/alice" </dev/null
ssh-keygen -q -t ed25519 -N '' -C mallory -f "$scratch/mallory" </dev/null
"$bin/cmdb" -c "$scratch/master.toml" user add alice --role reader \
  --pubkey "$scratch/alice.pub" </dev/null

passes=0 failures=0
# expect STATUS TEXT KEY METHOD PATH: runs the example, checks the status
# line it prints and that TEXT is in its output.
expect() {
  local want=$1 text=$2 key=$3 method=$4 path=$5 out got
  out=$("$py" "$example" --url "https://127.0.0.1:$api_port" --user alice \
    --key "$key" --fingerprint "$fp" "$method" "$path" </dev/null 2>&1) || true
  got=$(printf '%s\n' "$out" | head -n 1 | cut -d' ' -f1)
  if [ "$got" = "$want" ] && printf '%s' "$out" | grep -qF -- "$text"; then
    echo "ok   $method $path with $(basename "$key"): $got"
    passes=$((passes + 1))
  else
    echo "FAIL $method $path with $(basename "$key"): wanted $want and '$text', got:" >&2
    printf '%s\n' "$out" | head -n 20 >&2
    failures=$((failures + 1))
  fi
}

expect 200 '"items"' "$scratch/alice" GET '/v1/jobs?limit=5'
expect 200 '"items"' "$scratch/alice" GET /v1/assets
expect 401 'does not verify' "$scratch/mallory" GET '/v1/jobs?limit=5'
expect 401 'does not verify' "$scratch/mallory" GET /v1/assets

# A wrong pin must stop the example before it sends anything.
if [ "${fp:0:2}" = 00 ]; then wrong="ff${fp:2}"; else wrong="00${fp:2}"; fi
if out=$("$py" "$example" --url "https://127.0.0.1:$api_port" --user alice \
  --key "$scratch/alice" --fingerprint "$wrong" GET /v1/assets </dev/null 2>&1); then
  echo "FAIL a wrong fingerprint was accepted: $out" >&2
  failures=$((failures + 1))
elif printf '%s' "$out" | grep -q 'is not the pinned one'; then
  echo "ok   GET /v1/assets with a wrong fingerprint: refused"
  passes=$((passes + 1))
else
  echo "FAIL a wrong fingerprint failed otherwise: $out" >&2
  failures=$((failures + 1))
fi

if [ "$failures" -ne 0 ]; then
  echo "--- master log (tail) ---" >&2
  tail -n 40 "$scratch/master.log" >&2
  echo "$passes passed, $failures failed" >&2
  exit 1
fi
echo "$passes passed, 0 failed"
