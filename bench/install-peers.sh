#!/usr/bin/env bash
# install-peers.sh installs the benchmark peers (nginx, HAProxy, Caddy) and the
# closed-loop load generator (wrk) from Debian packages. It is idempotent: a
# package already installed is left alone. The packages' own services are not
# started (the harness runs every peer itself, on loopback, with its own config).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

want=(nginx haproxy wrk caddy)
missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-peers: all of ${want[*]} already installed"
	exit 0
fi

$SUDO apt-get update

# Keep the packages' init scripts from starting system-wide services on :80.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	created_policy=1
fi
cleanup() {
	if [ "$created_policy" = 1 ]; then
		$SUDO rm -f /usr/sbin/policy-rc.d
	fi
}
trap cleanup EXIT

install=()
for p in "${missing[@]}"; do
	if apt-cache show "$p" >/dev/null 2>&1; then
		install+=("$p")
	else
		echo "install-peers: $p is not available from the configured apt sources; the harness will skip it" >&2
	fi
done
if [ ${#install[@]} -gt 0 ]; then
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${install[@]}"
fi

for p in "${want[@]}"; do
	v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
	echo "install-peers: $p ${v:-not installed}"
done
