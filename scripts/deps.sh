#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only when they are missing.
# Usage: scripts/deps.sh build|test|bench|fuzz ...
set -eu
want=(gcc make pkg-config liburing-dev libssl-dev libnghttp2-dev zlib1g-dev libbrotli-dev libzstd-dev)
for set in "$@"; do
	case "$set" in
	build) ;;
	test) want+=(libcmocka-dev clang libclang-rt-14-dev python3 curl media-types openssl testssl.sh brotli zstd) ;;
	fuzz) want+=(clang libclang-rt-14-dev) ;;
	bench) want+=(nginx-light wrk python3 curl util-linux openssl h2o) ;;
	*) echo "deps.sh: unknown set '$set'" >&2; exit 2 ;;
	esac
done
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]} (run as root, or install them)" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
	apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
# nginx-light and h2o start a system service when installed; the bench starts its own.
for svc in nginx h2o; do
	if printf '%s\n' "${missing[@]}" | grep -q "^$svc"; then
		(service "$svc" stop || systemctl stop "$svc") >/dev/null 2>&1 || true
	fi
done
