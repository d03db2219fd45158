#!/usr/bin/env bash
# Builds the Debian packages into target/debian/:
#   cmdb-master  cmdb-master, cmdb, cmdb-key, their man pages and shell
#                completions, the cmdb-master unit, /etc/cmdb/master.toml
#   cmdb-minion  cmdb-minion, the cmdb-minion unit, /etc/cmdb/minion.toml
# Needs cargo-deb (installed here when missing). Install the packages with
# `dpkg -i target/debian/cmdb-master_*.deb` (or cmdb-minion_*.deb).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked
fi

# The packaged units are the hand-install ones of dist/systemd/ with the
# binaries in /usr/bin instead of /usr/local/bin.
for d in master minion; do
  if ! diff -u <(sed 's#/usr/local/bin/#/usr/bin/#' "dist/systemd/cmdb-$d.service") \
    "dist/debian/$d/cmdb-$d.service"; then
    echo "dist/debian/$d/cmdb-$d.service differs from dist/systemd/ beyond the paths" >&2
    exit 1
  fi
done

cargo build --release --locked -p master -p cli -p minion

# Man pages and completions, written by the cmdb just built, where the
# cmdb-master package's assets expect them (target/release/share/).
target=$(cargo metadata --no-deps --format-version 1 |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
release="$target/release"
share="$release/share"
rm -rf "$share"
"$release/cmdb" manpages "$share/man/man1" >/dev/null
gzip -9n "$share"/man/man1/*.1
mkdir -p "$share/bash-completion/completions" "$share/zsh/vendor-completions" \
  "$share/fish/vendor_completions.d"
for prog in cmdb cmdb-key; do
  "$release/cmdb" completions bash --program "$prog" >"$share/bash-completion/completions/$prog"
  "$release/cmdb" completions zsh --program "$prog" >"$share/zsh/vendor-completions/_$prog"
  "$release/cmdb" completions fish --program "$prog" >"$share/fish/vendor_completions.d/$prog.fish"
done

# Stripped binaries: the release profile's line tables stay in target/.
rm -f "$target"/debian/cmdb-master_*.deb "$target"/debian/cmdb-minion_*.deb
cargo deb --locked --no-build --strip -p master
cargo deb --locked --no-build --strip -p minion
# cargo-deb leaves its stripped copies of the binaries in target/<crate>/.
rm -f "$target"/master/*.stripped-*.tmp "$target"/minion/*.stripped-*.tmp
rmdir "$target/master" "$target/minion" 2>/dev/null || true
ls -l "$target"/debian/cmdb-master_*.deb "$target"/debian/cmdb-minion_*.deb
