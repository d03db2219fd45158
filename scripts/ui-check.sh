#!/usr/bin/env bash
# The web UI in a real browser: starts a master and three minions on
# 127.0.0.1 under a scratch dir (two accepted, one left pending), collects
# twice with a fact plugin whose value changes and one that reports hostile
# HTML, makes an admin and a reader with passwords, and drives Debian's
# chromium through chromedriver with Selenium (in a venv) over TLS.
# Screenshots of every page go to target/ui-shots/.
#
#   bash scripts/ui-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${UI_VENV:-$(pwd)/target/ui-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'selenium>=4.20,<5'
fi
for tool in chromium chromedriver; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install chromium chromium-driver)" >&2; exit 1; }
done

cargo build --workspace --bins --quiet
bin="$(pwd)/target/debug"
scratch="$(mktemp -d -t cmdb-ui.XXXXXX)"
. scripts/lib.sh
master_config
clean_up_on_exit

start master "$bin/cmdb-master" -c "$scratch/master.toml"
wait_for "$scratch/master.log" "master ready"

# Three minions: web01 with fact plugins, db01, and new01 left pending.
mkdir -p "$scratch/plugins"
echo 21 >"$scratch/inlet"
cat >"$scratch/plugins/rack_sensor" <<SH
#!/bin/sh
echo "{\"inlet_temp_c\": \$(cat $scratch/inlet)}"
SH
cat >"$scratch/plugins/hostile" <<'SH'
#!/bin/sh
printf '%s' '{"label": "<script>alert(1)</script>", "note": "\"><img src=x onerror=alert(2)>"}'
SH
chmod +x "$scratch/plugins/rack_sensor" "$scratch/plugins/hostile"
for id in web01 db01 new01; do
  extra="acceptance_wait_time = 0.5
acceptance_wait_time_max = 1
collect_interval = 0"
  if [ "$id" = web01 ]; then extra="$extra
plugins_dir = \"$scratch/plugins\""; fi
  minion_config "$id" "$extra"
  mv "$scratch/minion.toml" "$scratch/$id.toml"
  sed -i "s|$scratch/minion\"|$scratch/minion-$id\"|" "$scratch/$id.toml"
  start "$id" "$bin/cmdb-minion" -c "$scratch/$id.toml"
  wait_for "$scratch/$id.log" "key pending acceptance"
done
"$bin/cmdb-key" -c "$scratch/master.toml" -a web01 -y >/dev/null
"$bin/cmdb-key" -c "$scratch/master.toml" -a db01 -y >/dev/null
wait_for "$scratch/web01.log" "minion ready"
wait_for "$scratch/db01.log" "minion ready"
"$bin/cmdb" -c "$scratch/master.toml" run -L web01,db01 collect --out json >/dev/null
echo 25 >"$scratch/inlet"
"$bin/cmdb" -c "$scratch/master.toml" run web01 collect --out json >/dev/null
"$bin/cmdb" -c "$scratch/master.toml" asset set db01 department=finance site=par1 >/dev/null

admin_pw=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
reader_pw=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
printf '%s\n%s\n' "$admin_pw" "$admin_pw" |
  "$bin/cmdb" -c "$scratch/master.toml" user add ada --role admin --password >/dev/null
printf '%s\n%s\n' "$reader_pw" "$reader_pw" |
  "$bin/cmdb" -c "$scratch/master.toml" user add rex --role reader --password >/dev/null

shots="$(pwd)/target/ui-shots"
rm -rf "$shots"
mkdir -p "$shots"
status=0
UI_BASE="https://127.0.0.1:$api_port" UI_SHOTS="$shots" UI_ADMIN_PW="$admin_pw" \
  UI_READER_PW="$reader_pw" CMDB_KEY="$bin/cmdb-key" CMDB_CONFIG="$scratch/master.toml" \
  "$venv/bin/python" scripts/ui_check.py || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- master log (tail) ---" >&2
  tail -n 40 "$scratch/master.log" >&2
fi
exit "$status"
