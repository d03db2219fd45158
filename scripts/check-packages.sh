#!/usr/bin/env bash
# Checks the packages scripts/package.sh built, on this host, as root:
# installs both with dpkg -i, runs every installed binary's --version,
# starts /usr/bin/cmdb-master and /usr/bin/cmdb-minion by hand on the
# packaged /etc/cmdb configs (ports 4505-4507; systemd need not run),
# accepts the minion with cmdb-key, runs cmdb run '*' test.ping, stops
# both, purges the packages and checks that nothing is left behind.
#
# It refuses to run where cmdb is installed or /etc/cmdb or /var/lib/cmdb
# exist: the purge deletes them.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "check-packages.sh installs packages: run it as root" >&2
  exit 1
fi
for p in cmdb-master cmdb-minion; do
  if dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed\|config-files'; then
    echo "$p is installed here; this check would purge it" >&2
    exit 1
  fi
done
for d in /etc/cmdb /var/lib/cmdb; do
  if [ -e "$d" ]; then
    echo "$d exists; this check would delete it" >&2
    exit 1
  fi
done

target=$(cargo metadata --no-deps --format-version 1 |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
master_deb=$(ls "$target"/debian/cmdb-master_*.deb)
minion_deb=$(ls "$target"/debian/cmdb-minion_*.deb)

scratch=$(mktemp -d -t cmdb-packages.XXXXXX)
. scripts/lib.sh
purge() {
  stop_daemons
  dpkg --purge cmdb-master cmdb-minion >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap purge EXIT

echo "== dpkg -i"
dpkg -i "$master_deb" "$minion_deb"
for p in cmdb-master cmdb-minion; do
  dpkg-query -W -f '${Package} ${Version} ${Architecture}, depends: ${Depends}\n' "$p"
done

echo "== --version"
for bin in cmdb-master cmdb-minion cmdb cmdb-key; do
  "/usr/bin/$bin" --version
done

echo "== files"
stat -c '%a %U %n' /etc/cmdb/master.toml /etc/cmdb/minion.toml \
  /var/lib/cmdb/master /var/lib/cmdb/minion
dpkg-query -W -f '${Conffiles}\n' cmdb-master | grep -q '^ /etc/cmdb/master.toml '
dpkg-query -W -f '${Conffiles}\n' cmdb-minion | grep -q '^ /etc/cmdb/minion.toml '
for f in /usr/share/man/man1/cmdb.1.gz /usr/share/man/man1/cmdb-key.1.gz \
  /usr/share/bash-completion/completions/cmdb /usr/lib/systemd/system/cmdb-master.service \
  /usr/lib/systemd/system/cmdb-minion.service; do
  test -s "$f" || { echo "missing: $f" >&2; exit 1; }
done

echo "== the daemons on the packaged configs"
start master /usr/bin/cmdb-master
wait_for "$scratch/master.log" "master ready"
start minion /usr/bin/cmdb-minion
wait_for "$scratch/minion.log" "key pending acceptance"
cmdb-key -L
cmdb-key -A -y
wait_for "$scratch/minion.log" "minion ready"
cmdb run '*' test.ping
stop_daemons
pids=()

echo "== dpkg --purge"
dpkg --purge cmdb-master cmdb-minion
for d in /etc/cmdb /var/lib/cmdb /usr/bin/cmdb-master /usr/bin/cmdb-minion \
  /usr/bin/cmdb /usr/bin/cmdb-key; do
  if [ -e "$d" ]; then
    echo "left behind after the purge: $d" >&2
    exit 1
  fi
done
echo "packages installed, run and purged cleanly"
