#!/usr/bin/env bash
# `make install` into a temporary prefix, then build and run examples/hello.c against the
# installed headers, libportico.so (via pkg-config) and libportico.a. pt-test: once
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/pt-install.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
n=0
t() { n=$((n+1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

make -s -C "$top" B="$work/build" SAN=0 lib >"$work/make.log" 2>&1
make -s -C "$top" B="$work/build" SAN=0 PREFIX="$work/prefix" install >>"$work/make.log" 2>&1
t $? "make install into a prefix"
for f in include/portico/engine.h include/portico/http.h lib/libportico.a lib/libportico.so \
	 lib/libportico.so.0 lib/pkgconfig/portico.pc; do
	[ -e "$work/prefix/$f" ]; t $? "installed $f"
done
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
cc -o "$work/hello" "$top/examples/hello.c" $(pkg-config --cflags --libs portico) -luring -lpthread \
	-Wl,-rpath,"$work/prefix/lib" 2>>"$work/make.log"
t $? "examples/hello.c builds against the installed library (pkg-config)"
cc -o "$work/hello_static" "$top/examples/hello.c" -I"$work/prefix/include" \
	"$work/prefix/lib/libportico.a" $(pkg-config --libs-only-l --static portico | sed 's/-lportico//') \
	2>>"$work/make.log"
t $? "and statically"
nm -D --defined-only "$work/prefix/lib/libportico.so" | awk '{print $3}' | grep -v '^pt_' | grep -v '^_' > "$work/extra"
[ ! -s "$work/extra" ]; t $? "the shared library exports only pt_ names (hidden visibility)"
"$work/hello" -l 127.0.0.1:0 -w 1 >"$work/out" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q listening "$work/out" && break; sleep 0.1; done
port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$work/out")
body=$(curl -s "http://127.0.0.1:$port/" 2>/dev/null)
[ "$body" = "Hello, World!" ]; t $? "the installed build serves"
[ $n -gt 0 ] || cat "$work/make.log"
