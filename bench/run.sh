#!/usr/bin/env bash
# Builds release binaries and runs the scale benchmark: for each swarm size a
# fresh master and one cmdb-swarm process on 127.0.0.1. Writes BENCHMARKS.md.
#   bash bench/run.sh                       # 1000, 5000, 9000 minions
#   bash bench/run.sh --sizes 1000 --pings 5 --collects 3
#   bash bench/run.sh --ssh 500 --ssh-sessions 50   # agentless collection only
#   bash bench/run.sh --crash 50 --crash-minions 2000  # fleet collects across master kills only
#   bash bench/run.sh --cluster 9000 --pings 5 --collects 3  # two peers on PostgreSQL and NATS only
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
exec target/release/cmdb-bench "$@"
