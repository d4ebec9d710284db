#!/usr/bin/env bash
# Installs the Debian packages xdprouter's tests and lab need, if missing.
# Routing daemons must never start in the root namespace: policy-rc.d
# refuses every service start first.
set -euo pipefail
pkgs=(clang llvm libbpf-dev bpftool iproute2 procps ethtool iputils-ping bird2 frr nftables iptables man-db systemd stayrtr)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	# Without root the integration tests skip anyway; unit tests still run.
	echo "deps: missing packages ${missing[*]}; install them as root (sudo make deps)" >&2
	exit 0
fi
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
