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
echo "== scratch dir: $scratch (configs, state and logs)"
