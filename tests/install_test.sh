#!/usr/bin/env bash
# shellcheck disable=SC2317  # the helper functions run through check(), which shellcheck misses
# `meson install --destdir` into a temporary directory, then checks what landed where: the broker
# and the CLI, their man pages, the systemd unit (with the real paths substituted) and the example
# config; that the installed broker runs and loads the installed config; and that installing again
# keeps an edited config. Registered in tests/meson.build, which passes the configured paths.
# Prints "N passed, M failed" last (tests/count.py).
#
#   usage: install_test.sh MESON BUILDDIR SOURCEDIR BINDIR MANDIR SYSCONFDIR UNITDIR VERSION
set -uo pipefail
meson=$1 builddir=$2 sourcedir=$3 bindir=$4 mandir=$5 sysconfdir=$6 unitdir=$7 version=$8

dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
passed=0 failed=0

check() { # check NAME COMMAND...: one test case
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok - $name"
    else
        failed=$((failed + 1))
        echo "not ok - $name"
    fi
}

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

install_into_dest() {
    timeout 60 "$meson" install -C "$builddir" --destdir "$dest" --no-rebuild --quiet
}

check "meson install --destdir succeeds" install_into_dest || finish

unit=$dest$unitdir/stompws.service
conf=$dest$sysconfdir/stompws/stompws.conf
check "broker installed in bindir" test -x "$dest$bindir/stompws"
check "stompws-cli installed in bindir" test -x "$dest$bindir/stompws-cli"
check "stompws(8) installed" test -s "$dest$mandir/man8/stompws.8"
check "stompws-cli(1) installed" test -s "$dest$mandir/man1/stompws-cli.1"
check "systemd unit installed in the unit directory" test -s "$unit"

expected="ExecStart=$bindir/stompws --config $sysconfdir/stompws/stompws.conf"
check "unit starts the installed binary with the installed config" grep -qxF "$expected" "$unit"
no_placeholders() { ! grep -q '@[a-z_]*@' "$1"; }
check "unit has no unsubstituted @placeholders@" no_placeholders "$unit"

out=$(timeout 10 "$dest$bindir/stompws" --version 2>&1)
check "installed broker runs --version" test "$out" = "stompws $version"

check "example config installed" cmp -s "$sourcedir/docs/stompws.conf" "$conf"
check "installed config passes --check-config" \
    "$dest$bindir/stompws" --check-config --config "$conf"

# The installed broker starts with the installed config (listeners moved to free loopback ports)
# and stops cleanly on SIGTERM.
starts_with_installed_config() {
    local log=$dest/broker.log
    "$dest$bindir/stompws" --config "$conf" --ws 127.0.0.1:0 --tcp 127.0.0.1:0 \
        --set server.wss=off --set server.stomp_tls=off --set server.http=off \
        --set cluster.redis= >"$log" 2>&1 &
    local pid=$! up=no
    for _ in $(seq 50); do
        grep -q '^listening tcp ' "$log" && up=yes && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null
    local rc=0
    wait "$pid" || rc=$?
    [ "$up" = yes ] && [ "$rc" -eq 0 ] && return 0
    sed 's/^/# /' "$log"
    return 1
}
check "installed broker starts with the installed config" starts_with_installed_config

echo "# edited by install_test.sh" >>"$conf"
check "meson install again succeeds" install_into_dest
check "reinstall keeps an edited config" grep -q '^# edited by install_test.sh$' "$conf"
finish
