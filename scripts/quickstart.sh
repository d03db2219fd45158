#!/usr/bin/env bash
# Builds cmdb, starts a master and one minion on this host under a scratch
# directory, accepts the minion's key, runs test.ping and collect, prints the
# facts, makes a web UI user and prints the UI's address and login. On a
# terminal both daemons keep running until Ctrl-C (so the UI can be tried);
# otherwise (CI, a pipe) the login is checked once and both stop. Traffic
# stays on 127.0.0.1.
#
#   bash scripts/quickstart.sh            # scratch dir is a new temp dir
#   CMDB_SCRATCH=/tmp/cmdb bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --bins --quiet
bin="$(pwd)/target/debug"
scratch="${CMDB_SCRATCH:-$(mktemp -d -t cmdb-quickstart.XXXXXX)}"
mkdir -p "$scratch"

. scripts/lib.sh
master_config
minion_config quickstart-minion "acceptance_wait_time = 0.5
acceptance_wait_time_max = 2
heartbeat_interval = 5"
trap stop_daemons EXIT

start master "$bin/cmdb-master" -c "$scratch/master.toml"
wait_for "$scratch/master.log" "master ready"
start minion "$bin/cmdb-minion" -c "$scratch/minion.toml"
wait_for "$scratch/minion.log" "key pending acceptance"

echo "== cmdb-key -L"
"$bin/cmdb-key" -c "$scratch/master.toml" -L
echo "== cmdb-key -A -y"
"$bin/cmdb-key" -c "$scratch/master.toml" -A -y
wait_for "$scratch/minion.log" "minion ready"

echo "== cmdb run '*' test.ping"
"$bin/cmdb" -c "$scratch/master.toml" run '*' test.ping
echo "== cmdb run '*' collect"
"$bin/cmdb" -c "$scratch/master.toml" run '*' collect

# A web UI user with a random password, given on two lines of stdin.
password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
printf '%s\n%s\n' "$password" "$password" |
  "$bin/cmdb" -c "$scratch/master.toml" user add admin --role admin --password
fingerprint=$(grep -o 'fingerprint[^ ]*' "$scratch/master.log" | head -1 | cut -d= -f2 | tr -d '"')
ui="https://127.0.0.1:$api_port/ui"
# The login works: the form's token, then the session cookie.
jar="$scratch/ui-cookies"
token=$(curl -sk -c "$jar" "$ui/login" | grep -o 'name="csrf" value="[^"]*"' | head -1 | cut -d'"' -f4)
status=$(curl -sk -b "$jar" -c "$jar" -o /dev/null -w '%{http_code}' \
  --data-urlencode "csrf=$token" --data-urlencode "user=admin" \
  --data-urlencode "password=$password" --data-urlencode "next=/ui" "$ui/login")
curl -skf -b "$jar" -o /dev/null "$ui/assets"
rm -f "$jar"
echo "== web UI: $ui"
echo "   log in as admin, password $password"
echo "   (self-signed certificate, SHA-256 $fingerprint; login answered $status)"
echo "== scratch dir: $scratch (configs, state and logs)"
if [ -t 0 ] && [ -t 1 ] && [ "${CI:-}" != "true" ]; then
  echo "== the master and the minion keep running; Ctrl-C stops both"
  trap 'exit 0' INT
  wait
fi
