#!/bin/sh
# Installs the example config as SYSCONFDIR/stompws/stompws.conf unless one is there already:
# `meson install` over an earlier install must never overwrite the operator's settings (the
# systemd unit starts the broker with this file). Run by meson install (docs/meson.build), which
# sets DESTDIR when --destdir is given.
#   usage: install-config.sh EXAMPLE DIR     (DIR absolute, e.g. /usr/local/etc/stompws)
set -eu
example=$1
dir=${DESTDIR:-}$2
target=$dir/stompws.conf

say() { [ -n "${MESON_INSTALL_QUIET:-}" ] || echo "$@"; }

mkdir -p "$dir"
if [ -e "$target" ]; then
    say "Keeping $target (not replaced by $example)"
    exit 0
fi
# 0644: the service's user must read it (the unit runs with DynamicUser=yes). A secret such as a
# Redis password in cluster.redis is better kept out of it: see docs/stompws.service.in.
install -m 0644 "$example" "$target"
say "Installing $example to $target"
