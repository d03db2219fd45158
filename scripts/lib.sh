# Shared by the scripts that start a master (and a minion) on 127.0.0.1
# under a scratch directory. Source it with $scratch set.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 40000))
}

# wait_for FILE PATTERN: waits up to 30 s for PATTERN in FILE.
wait_for() {
  for _ in $(seq 1 300); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  cat "$1" >&2
  return 1
}

# Daemons started with `start NAME BIN ARGS...` (log in $scratch/NAME.log);
# stop_daemons stops them all.
pids=()
start() {
  local name=$1
  shift
  "$@" </dev/null 2>"$scratch/$name.log" &
  pids+=($!)
}
stop_daemons() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
# On exit: stop the daemons and remove $scratch.
clean_up_on_exit() {
  trap 'stop_daemons; rm -rf "$scratch"' EXIT
}

# Picks free ports (pub_port, ret_port, api_port) and writes
# $scratch/master.toml with the API on TLS.
master_config() {
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
}

# minion_config ID [LINES]: writes $scratch/minion.toml for minion ID of
# the master above, with LINES appended.
minion_config() {
  cat >"$scratch/minion.toml" <<CFG
master       = "127.0.0.1"
publish_port = $pub_port
ret_port     = $ret_port
state_dir    = "$scratch/minion"
id           = "$1"
${2:-}
CFG
}
