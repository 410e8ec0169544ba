# Portico build. Out-of-source: everything goes under build/.
#   make            release build (-O2) in build/: libportico.{a,so}, examples, bench tools
#                   (DEBUG=1 B=build/debug: with the invariants checked, as the test builds do)
#   make run        install deps, build, run the server on www/ (until then: the echo example)
#   make test       install deps, build with ASan+UBSan in build/san, run every test on both backends
#   make fuzz       build the libFuzzer targets in build/fuzz and run each for FUZZ_SECONDS
#   make tsan       ThreadSanitizer build in build/tsan and the threaded tests (make test runs them too)
#   make soak       the release server under mixed, slow and abusive clients (SOAK_SECONDS, 300)
#   make deploy-test  HAProxy in front of three portico instances in network namespaces (root)
#   make bench      portico vs nginx vs the limit server (see docs/BENCHMARKS.md)
#   make install    PREFIX=/usr/local: headers, libportico.a/.so, portico.pc
# Flags: CC (default gcc), CPPFLAGS, CFLAGS (default -O2 -g) and LDFLAGS are the user's and are
# added to what the build needs, never in place of it. NO_DEPS=1: run and test install nothing.
# Sources are discovered by wildcard: a new .c file in src/<layer>/, tests/unit/<layer>/test_*.c,
# tests/fuzz/fuzz_*.c, examples/*.c or bench/*.c needs no Makefile change.

B       ?= build
SAN     ?= 0
PREFIX  ?= /usr/local
VERSION := 0.1.0
# make's built-in CC is "cc", which a plain ?= would never replace: gcc unless the command line
# or the environment names a compiler.
ifeq ($(origin CC),default)
CC      := gcc
endif

# The user's flags (packagers' hardening flags, CFLAGS=-O3, ...) are CPPFLAGS, CFLAGS and
# LDFLAGS, honoured as given; what the build needs stays in PT_CFLAGS, which they add to and
# never replace (liburing's habit). WERROR= builds with warnings that do not stop it.
CFLAGS  ?= -O2 -g
LDFLAGS ?=
WERROR  ?= -Werror
PT_CFLAGS := -std=gnu11 -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes -Wno-unused-parameter \
	-D_GNU_SOURCE -pthread -fvisibility=hidden -fPIC -Iinclude -Isrc -DPT_VERSION='"$(VERSION)"' -MMD -MP
# the build mode, after CFLAGS: sanitizer builds have their own optimization level and
# PT_TESTING (invariants checked, fault hooks); DEBUG=1 checks the invariants (PT_DEBUG) in any
ifeq ($(SAN),1)
MODE_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
	-DPT_TESTING=1
else ifeq ($(SAN),tsan)
MODE_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=thread -DPT_TESTING=1
else
MODE_CFLAGS :=
endif
ifeq ($(DEBUG),1)
MODE_CFLAGS += -DPT_DEBUG=1
endif
ALL_CFLAGS = $(PT_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(MODE_CFLAGS)
LDLIBS  := -luring -lssl -lcrypto -lnghttp2 -lpthread
# the portico program's own libraries (compression: src/server/compress.c); libportico has none
SRV_LDLIBS := -lz -lbrotlienc -lzstd
SANFLAGS := -fsanitize=address,undefined
LDFLAGS_SAN := $(if $(filter 1,$(SAN)),$(SANFLAGS))$(if $(filter tsan,$(SAN)),-fsanitize=thread)
# every link: the user's LDFLAGS, then the sanitizer runtime (links of objects repeat CFLAGS, as
# flags such as -flto or -fsanitize must be given there too)
ALL_LDFLAGS = $(LDFLAGS) $(LDFLAGS_SAN)

LIB_SRC  := $(sort $(wildcard src/engine/*.c src/http/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o)
SRV_SRC  := $(sort $(wildcard src/server/*.c))
SRV_MAIN := $(wildcard src/server/main.c)
SRV_OBJ  := $(SRV_SRC:%.c=$(B)/obj/%.o)
EX_SRC   := $(sort $(wildcard examples/*.c))
EX_BIN   := $(EX_SRC:examples/%.c=$(B)/examples/%)
BENCH_SRC:= $(sort $(wildcard bench/*.c))
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(B)/bench/%)
UT_SRC   := $(sort $(wildcard tests/unit/*/test_*.c))
UT_BIN   := $(UT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
IT_SRC   := $(sort $(wildcard tests/integration/*.c))
IT_BIN   := $(IT_SRC:tests/integration/%.c=$(B)/tests/integration/%)
# the test harness's fault policy (installs the library's fault hook, reads PORTICO_FAULTS):
# linked into the test programs, and into portico in the test builds only
TSUP_OBJ := $(B)/obj/tests/support/fault.o
SRV_TSUP := $(if $(filter-out 0,$(SAN)),$(TSUP_OBJ))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

.PHONY: all lib run test test-build fuzz fuzz-build bench install clean deps tsan soak deploy-test
all: lib $(if $(SRV_MAIN),$(B)/portico) $(EX_BIN) $(BENCH_BIN) $(B)/portico-load
lib: $(B)/libportico.a $(B)/libportico.so

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# the status page is built into the program as it is (.incbin in src/server/status.c)
$(B)/obj/src/server/status.o: src/server/status.html

$(B)/libportico.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(B)/libportico.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libportico.so.0 -Wl,-z,defs $(CFLAGS) $(MODE_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/portico: $(SRV_OBJ) $(SRV_TSUP) $(B)/libportico.a
	$(CC) $(CFLAGS) $(MODE_CFLAGS) $(ALL_LDFLAGS) -o $@ $(SRV_OBJ) $(SRV_TSUP) $(B)/libportico.a \
		$(LDLIBS) $(SRV_LDLIBS)

# portico-load (tools/load/): a load generator on the engine, one program from several files
LOAD_SRC := $(sort $(wildcard tools/load/*.c))
LOAD_OBJ := $(LOAD_SRC:%.c=$(B)/obj/%.o)
$(B)/portico-load: $(LOAD_OBJ) $(B)/libportico.a
	$(CC) $(CFLAGS) $(MODE_CFLAGS) $(ALL_LDFLAGS) -o $@ $(LOAD_OBJ) $(B)/libportico.a $(LDLIBS) -lm

$(B)/examples/%: examples/%.c $(B)/libportico.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(B)/libportico.a $(LDLIBS)

# bench tools are standalone programs (the limit server and clients must not depend on Portico)
$(B)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LDLIBS) -lm

$(B)/tests/unit/%: tests/unit/%.c $(TSUP_OBJ) $(B)/libportico.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -Itests -o $@ $< $(TSUP_OBJ) $(B)/libportico.a $(LDLIBS) \
		$(if $(findstring /server/,$@),$(SRV_LDLIBS) -lbrotlidec) -lcmocka

$(B)/tests/integration/%: tests/integration/%.c $(TSUP_OBJ) $(B)/libportico.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -Itests -o $@ $< $(TSUP_OBJ) $(B)/libportico.a $(LDLIBS) -lm

# libFuzzer targets: clang, ASan+UBSan, built from the sources named on the target's
# "// fuzz-sources:" line, linked with the libraries on its "// fuzz-libs:" line (if any).
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc -DPT_FUZZING=1 -DPT_VERSION='"$(VERSION)"' \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(SRV_SRC)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(shell sed -n 's|^// *fuzz-sources: *||p' $<) \
		$(shell sed -n 's|^// *fuzz-libs: *||p' $<)

test-build:
	$(MAKE) B=build/san SAN=1 lib $(addprefix build/san/,$(if $(SRV_MAIN),portico) portico-load) \
		$(EX_BIN:$(B)/%=build/san/%) $(UT_BIN:$(B)/%=build/san/%) $(IT_BIN:$(B)/%=build/san/%)
	$(MAKE) B=build SAN=0 all
	$(if $(FUZZ_SRC),$(MAKE) fuzz-build)
	$(if $(TSAN_BIN),$(MAKE) B=build/tsan SAN=tsan $(TSAN_BIN))

fuzz-build: $(FUZZ_BIN)

deps:
	@scripts/deps.sh build test

run: 
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory B=build all
	@scripts/run.sh

test:
	@scripts/deps.sh build test
	@$(MAKE) --no-print-directory test-build
	@tests/run.sh

# ThreadSanitizer (tests/run.sh runs it too): the library built with -fsanitize=thread in build/tsan
# (SAN=tsan), and the threaded programs of tests/tsan/ run against it case by case.
TSAN_BIN := $(patsubst tests/tsan/%.c,build/tsan/tests/tsan/%,$(wildcard tests/tsan/*.c))
tsan:
	@$(MAKE) --no-print-directory B=build/tsan SAN=tsan $(TSAN_BIN)
	@tests/tsan/run.sh

$(B)/tests/tsan/%: tests/tsan/%.c $(TSUP_OBJ) $(B)/libportico.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -Itests -o $@ $< $(TSUP_OBJ) $(B)/libportico.a $(LDLIBS)

# Soak test (not part of make test): the release server under mixed clients for SOAK_SECONDS
# (default 300); see tests/soak/soak.py.
soak:
	@scripts/deps.sh build test
	@$(MAKE) --no-print-directory B=build build/portico
	@tests/soak/soak.py

# The deployment test (not part of make test; CI runs it): HAProxy in front of three release
# portico instances, each in a network namespace of its own (root; see tests/deploy/deploy.py).
deploy-test:
	@scripts/deps.sh build deploy
	@$(MAKE) --no-print-directory B=build build/portico
	@tests/deploy/deploy.py

FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

bench:
	@scripts/deps.sh build bench
	@$(MAKE) --no-print-directory B=build all
	@bench/run.sh

install: lib $(if $(SRV_MAIN),$(B)/portico)
	install -d $(DESTDIR)$(PREFIX)/include/portico $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/portico/*.h $(DESTDIR)$(PREFIX)/include/portico/
	install -m 644 $(B)/libportico.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/libportico.so $(DESTDIR)$(PREFIX)/lib/libportico.so.$(VERSION)
	ln -sf libportico.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libportico.so.0
	ln -sf libportico.so.0 $(DESTDIR)$(PREFIX)/lib/libportico.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' portico.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/portico.pc
	$(if $(SRV_MAIN),install -d $(DESTDIR)$(PREFIX)/bin && install -m 755 $(B)/portico $(DESTDIR)$(PREFIX)/bin/)
	$(if $(wildcard docs/portico.1),install -d $(DESTDIR)$(PREFIX)/share/man/man1 && install -m 644 docs/portico.1 $(DESTDIR)$(PREFIX)/share/man/man1/)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- Windows: the engine on I/O completion ports, cross-built with mingw-w64, run under Wine ----
# make win          build/win: libportico.a (the engine and the HTTP/1.1 layer; no TLS, no HTTP/2:
#                   Debian has no OpenSSL or nghttp2 for mingw-w64), portico.exe, echo.exe,
#                   hello.exe and the Windows tests (tests/win/*.c)
# make test-windows install the packages (scripts/deps.sh windows), build, run tests/win/run.sh
WIN_CC     ?= x86_64-w64-mingw32-gcc
WB         := build/win
WIN_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter \
	-D_FILE_OFFSET_BITS=64 -D_WIN32_WINNT=0x0601 -D_POSIX_THREAD_SAFE_FUNCTIONS=200112L -Iinclude -Isrc -DPT_VERSION='"$(VERSION)"' \
	-O2 -g -DPT_TESTING=1 -MMD -MP
WIN_LIBS   := -static -lws2_32 -lmswsock -lntdll -lpthread
WIN_CORE   := conn conn_mem connect engine listen sendq timer post fault proxy proxy_conn stop
WIN_HTTP   := $(filter-out src/http/h2%,$(wildcard src/http/*.c))
WIN_SRC    := $(WIN_CORE:%=src/engine/%.c) $(sort $(wildcard src/engine/win/*.c)) \
	$(sort $(WIN_HTTP) $(wildcard src/http/win/*.c))
WIN_OBJ    := $(WIN_SRC:%.c=$(WB)/obj/%.o)
WIN_TESTS  := $(patsubst tests/win/%.c,$(WB)/tests/%.exe,$(wildcard tests/win/test_*.c))

# portico.exe: src/server/ without its Linux-only files (the openat2 walk, signals, the
# brotli/zstd codecs), plus src/server/win/: the POSIX interfaces the C runtime lacks
# (win/posix.h, force-included; win/include/ holds the missing POSIX headers), the docroot walk
# with NtCreateFile, the console control handler, gzip only (Debian's libz-mingw-w64-dev)
WIN_SRV_LINUX := src/server/path_open.c src/server/sys_posix.c src/server/compress_more.c
WIN_SRV_SRC := $(filter-out $(WIN_SRV_LINUX),$(sort $(wildcard src/server/*.c))) \
	$(sort $(wildcard src/server/win/*.c))
WIN_SRV_OBJ := $(WIN_SRV_SRC:%.c=$(WB)/obj/%.o)
$(WIN_SRV_OBJ): WIN_CFLAGS += -Isrc/server/win/include -include src/server/win/posix.h

.PHONY: win test-windows
win: $(WB)/libportico.a $(WB)/examples/echo.exe $(WB)/examples/hello.exe $(WIN_TESTS) \
	$(WB)/tests/integration/http_testsrv.exe $(WB)/portico.exe

$(WB)/obj/src/server/status.o: src/server/status.html

$(WB)/portico.exe: $(WIN_SRV_OBJ) $(WB)/libportico.a
	$(WIN_CC) $(WIN_CFLAGS) -o $@ $(WIN_SRV_OBJ) $(WB)/libportico.a -lz $(WIN_LIBS)

$(WB)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_CFLAGS) -c $< -o $@

$(WB)/libportico.a: $(WIN_OBJ)
	rm -f $@ && x86_64-w64-mingw32-ar rcs $@ $^

$(WB)/examples/%.exe: examples/%.c $(WB)/libportico.a
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_CFLAGS) -o $@ $< $(WB)/libportico.a $(WIN_LIBS)

$(WB)/tests/%.exe: tests/win/%.c $(WB)/libportico.a
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_CFLAGS) -Itests -o $@ $< $(WB)/libportico.a $(WIN_LIBS)

$(WB)/tests/integration/%.exe: tests/integration/%.c $(WB)/libportico.a
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_CFLAGS) -Itests -o $@ $< $(WB)/libportico.a $(WIN_LIBS)

test-windows:
	@scripts/deps.sh windows
	@$(MAKE) --no-print-directory win
	@tests/win/run.sh

-include $(WIN_OBJ:.o=.d) $(WIN_SRV_OBJ:.o=.d)
