#!/usr/bin/env bash
# Checks the running API against its own OpenAPI document with schemathesis:
# starts a master and a minion on 127.0.0.1 under a scratch dir, accepts the
# minion, collects once, makes an admin token, and runs schemathesis over
# TLS. Fails on any finding.
#
#   bash scripts/api-conformance.sh          # ST_MAX_TIME=90 by default
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${ST_VENV:-$(pwd)/target/st-venv}"
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'schemathesis>=4,<5'
fi

cargo build --workspace --bins --quiet
bin="$(pwd)/target/debug"
scratch="$(mktemp -d -t cmdb-st.XXXXXX)"
. scripts/lib.sh
master_config
minion_config st-minion "acceptance_wait_time = 0.5
acceptance_wait_time_max = 1
collect_interval = 0"
clean_up_on_exit

start master "$bin/cmdb-master" -c "$scratch/master.toml"
wait_for "$scratch/master.log" "master ready"
start minion "$bin/cmdb-minion" -c "$scratch/minion.toml"
wait_for "$scratch/minion.log" "key pending acceptance"
"$bin/cmdb-key" -c "$scratch/master.toml" -A -y >/dev/null
wait_for "$scratch/minion.log" "minion ready"
"$bin/cmdb" -c "$scratch/master.toml" run '*' collect --out json >/dev/null
"$bin/cmdb" -c "$scratch/master.toml" user add st-admin --role admin >/dev/null
token=$("$bin/cmdb" -c "$scratch/master.toml" token create st-admin 2>/dev/null | tail -n 1)

base="https://127.0.0.1:$api_port"
python3 - "$base/v1/openapi.json" "$scratch/openapi.json" <<'PY'
import ssl, sys, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with urllib.request.urlopen(sys.argv[1], context=ctx) as r, open(sys.argv[2], "wb") as f:
    f.write(r.read())
PY
cat >"$scratch/st.toml" <<CFG
[auth.openapi.bearer]
bearer = "$token"
CFG
status=0
"$venv/bin/st" --config-file "$scratch/st.toml" run "$scratch/openapi.json" --url "$base" \
  --tls-verify false \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-time "${ST_MAX_TIME:-90}" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- master log (tail) ---" >&2
  tail -n 40 "$scratch/master.log" >&2
fi
exit "$status"
