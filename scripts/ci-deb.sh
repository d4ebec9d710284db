#!/usr/bin/env bash
# CI: build the .deb, install it on this (throwaway) machine with
# policy-rc.d refusing every service start, check what it installed, and
# purge it again. Its maintainer scripts neither enable nor start
# xdprouterd (see packaging/scripts), and this script never does either.
set -euxo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "ci-deb: needs root (dpkg -i)" >&2; exit 1; }
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
fi
if dpkg-query -W -f='${Status}' xdprouter 2>/dev/null | grep -q "install ok installed"; then
	echo "ci-deb: xdprouter is installed already: not touching it" >&2
	exit 1
fi
make deb
deb=$(ls -t bin/xdprouter_*.deb | head -1)
trap 'dpkg --purge xdprouter' EXIT
dpkg -i "$deb"
test -x /usr/bin/xdprouterd -a -x /usr/bin/xdprouterctl -a -x /usr/bin/gobgp
/usr/bin/xdprouterd --check --config /etc/xdprouter/xdprouter.toml
for ex in /usr/share/xdprouter/examples/*.toml; do /usr/bin/xdprouterd --check --config "$ex"; done
/usr/bin/xdprouterd --version
/usr/bin/xdprouterctl --config /etc/xdprouter/xdprouter.toml version
/usr/bin/gobgp --version
dpkg-query -W -f='${Conffiles}\n' xdprouter | grep -q /etc/xdprouter/xdprouter.toml
systemd-analyze verify /lib/systemd/system/xdprouterd.service
systemd-analyze security --offline=yes /lib/systemd/system/xdprouterd.service | tail -1
for p in xdprouterd xdprouterctl; do MANWIDTH=80 man --warnings -P cat $p >/dev/null; done
MANWIDTH=80 man --warnings -P cat 1 gobgp >/dev/null
# Nothing was started or enabled (other xdprouterds, e.g. of the
# integration tests, run from elsewhere).
if pgrep -f '^/usr/bin/xdprouterd( |$)'; then echo "ci-deb: the package started xdprouterd" >&2; exit 1; fi
if [ -e /etc/systemd/system/multi-user.target.wants/xdprouterd.service ]; then echo "ci-deb: the package enabled xdprouterd" >&2; exit 1; fi
