#!/usr/bin/env bash
# The build survives the user's flags (STYLE.md 18): the library and portico built with
# CC=clang CFLAGS=-O3 LDFLAGS="-Wl,-z,relro -Wl,-z,now" into a temporary build directory link,
# every compile still carries the flags the build needs, the user's LDFLAGS reach both links
# (BIND_NOW is not the linker's default here, so its presence proves it), the shared library
# links with -z defs and exports only pt_ names, and the program runs. Then the Makefile's
# defaults (gcc unless CC is given) and scripts/deps.sh (says what it installs; NO_DEPS=1 installs
# nothing), the latter against a stand-in dpkg-query and apt-get. pt-test: once
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/pt-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
n=0
t() { n=$((n+1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

if ! command -v clang >/dev/null; then
	echo "ok 1 # SKIP clang not installed (scripts/deps.sh test installs it)"
	exit 0
fi
B=$work/build
make -C "$top" -j2 --no-print-directory B="$B" CC=clang CFLAGS=-O3 \
	LDFLAGS="-Wl,-z,relro -Wl,-z,now" "$B/libportico.so" "$B/portico" >"$work/make.log" 2>&1
rc=$?
t $rc "CC=clang CFLAGS=-O3 LDFLAGS=...: libportico.so and portico build and link"
[ $rc = 0 ] || tail -30 "$work/make.log"

compiles=$(grep -c '^clang .* -c src/' "$work/make.log")
good=$(grep '^clang .* -c src/' "$work/make.log" | grep -- '-fvisibility=hidden' | grep -- '-Werror' |
	grep -- '-Iinclude' | grep -c -- ' -O3 ')
[ "$compiles" -gt 20 ] && [ "$compiles" = "$good" ]
t $? "every compile is clang with -O3 and the build's own flags ($good of $compiles)"
grep -q -- '-shared .*-Wl,-z,defs' "$work/make.log"
t $? "the shared library links with -z defs"
for f in libportico.so portico; do
	readelf -dW "$B/$f" 2>/dev/null | grep -Eq 'BIND_NOW|FLAGS.*NOW'
	t $? "LDFLAGS reach the link of $f (BIND_NOW)"
done
nm -D --defined-only "$B/libportico.so" | awk '{print $3}' | grep -v '^pt_' | grep -v '^_' >"$work/extra"
[ ! -s "$work/extra" ]
t $? "the shared library exports only pt_ names"
"$B/portico" --version >"$work/version" 2>&1 && grep -q portico "$work/version"
t $? "the program runs (--version)"

# CC: make's built-in "cc" is replaced by gcc, a CC from the environment or command line is kept
first() { make -C "$top" -n --no-print-directory B="$work/n" "$@" "$work/n/obj/src/engine/conn.o" |
	grep -m1 -- ' -c src/' | awk '{print $1}'; }
[ "$(env -u CC bash -c "$(declare -f first); top=$top work=$work; first")" = gcc ]
t $? "CC defaults to gcc"
[ "$(CC=clang first)" = clang ] && [ "$(first CC=clang)" = clang ]
t $? "CC from the environment or the command line is used"

# deps.sh against stand-ins: nothing installed, apt-get records what it is asked
mkdir -p "$work/bin"
printf '#!/bin/sh\nexit 1\n' >"$work/bin/dpkg-query"
printf '#!/bin/sh\necho "$@" >>"%s/apt.log"\n' "$work" >"$work/bin/apt-get"
chmod +x "$work/bin/dpkg-query" "$work/bin/apt-get"
out=$(PATH="$work/bin:$PATH" NO_DEPS=1 "$top/scripts/deps.sh" build test 2>&1); rc=$?
[ $rc = 0 ] && [ ! -e "$work/apt.log" ] && [[ "$out" == *"NO_DEPS=1"*liburing-dev* ]]
t $? "NO_DEPS=1: deps.sh installs nothing and names what is missing"
if [ "$(id -u)" = 0 ]; then
	out=$(PATH="$work/bin:$PATH" NO_DEPS= "$top/scripts/deps.sh" build 2>&1); rc=$?
	[ $rc = 0 ] && grep -q 'install .*liburing-dev' "$work/apt.log" && [[ "$out" == *installing*liburing-dev* ]]
	t $? "deps.sh says what it installs, and installs it"
fi
