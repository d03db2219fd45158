#!/usr/bin/env bash
# Builds cmdb, starts a master and one minion on this host under a scratch
# directory, accepts the minion's key, runs test.ping and collect, prints the
# facts, and stops both daemons again. Traffic stays on 127.0.0.1.
#
#   bash scripts/quickstart.sh            # scratch dir is a new temp dir
#   CMDB_SCRATCH=/tmp/cmdb bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --bins --quiet
bin="$(pwd)/target/debug"
scratch="${CMDB_SCRATCH:-$(mktemp -d -t cmdb-quickstart.XXXXXX)}"
mkdir -p "$scratch"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 40000))
}
pub_port=$(free_port)
ret_port=$(free_port)
api_port=$(free_port)

cat >"$scratch/master.toml" <<CFG
interface    = "127.0.0.1"
publish_port = $pub_port
ret_port     = $ret_port
state_dir    = "$scratch/master"
file_roots   = ["$scratch/srv"]

[api]
listen       = "127.0.0.1:$api_port"
CFG
cat >"$scratch/minion.toml" <<CFG
master       = "127.0.0.1"
publish_port = $pub_port
ret_port     = $ret_port
state_dir    = "$scratch/minion"
id           = "quickstart-minion"
acceptance_wait_time = 0.5
acceptance_wait_time_max = 2
heartbeat_interval = 5
CFG

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() { # file pattern
  for _ in $(seq 1 300); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  cat "$1" >&2
  return 1
}

"$bin/cmdb-master" -c "$scratch/master.toml" 2>"$scratch/master.log" &
pids+=($!)
wait_for "$scratch/master.log" "master ready"
"$bin/cmdb-minion" -c "$scratch/minion.toml" 2>"$scratch/minion.log" &
pids+=($!)
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
echo "== scratch dir: $scratch (configs, state and logs)"
