#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only when they are missing, and says which.
# Usage: scripts/deps.sh build|test|bench|fuzz|deploy ...
# NO_DEPS=1 (make run NO_DEPS=1, make test NO_DEPS=1): install nothing, only name what is missing.
set -eu
want=(gcc make pkg-config liburing-dev libssl-dev libnghttp2-dev zlib1g-dev libbrotli-dev libzstd-dev)
for set in "$@"; do
	case "$set" in
	build) ;;
	test) want+=(libcmocka-dev clang libclang-rt-14-dev python3 curl media-types openssl testssl.sh brotli zstd python3-h2 python3-hyperframe python3-hpack nghttp2-client chromium python3-prometheus-client fonts-dejavu-core) ;;
	fuzz) want+=(clang libclang-rt-14-dev) ;;
	windows) want+=(gcc-mingw-w64-x86-64 libz-mingw-w64-dev wine64 wine python3 curl) ;;
	bench) want+=(nginx-light wrk python3 curl util-linux openssl h2o nghttp2-client gnuplot-nox haproxy) ;;
	deploy) want+=(haproxy iproute2 python3) ;;
	*) echo "deps.sh: unknown set '$set'" >&2; exit 2 ;;
	esac
done
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "${NO_DEPS:-0}" = 1 ]; then
	echo "deps.sh: NO_DEPS=1: not installing the missing packages ${missing[*]}" >&2
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]} (run as root, install them, or set NO_DEPS=1)" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]} with apt-get (NO_DEPS=1 skips this)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
	apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
echo "deps.sh: installed ${missing[*]}"
# nginx-light, h2o and haproxy start a system service when installed; the bench and the
# deployment test start their own.
for svc in nginx h2o haproxy; do
	if printf '%s\n' "${missing[@]}" | grep -q "^$svc"; then
		(service "$svc" stop || systemctl stop "$svc") >/dev/null 2>&1 || true
	fi
done
