# Thin wrapper: CMake builds the C core once per interpreter; busted runs the
# suite once per interpreter. `make test` installs missing Debian packages.
LUAS      := lua5.1 lua5.2 lua5.3 lua5.4 luajit
INC_lua5.1 := /usr/include/lua5.1
INC_lua5.2 := /usr/include/lua5.2
INC_lua5.3 := /usr/include/lua5.3
INC_lua5.4 := /usr/include/lua5.4
INC_luajit := /usr/include/luajit-2.1
BUSTED    := /usr/bin/busted
DEBS      := lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev lua5.4 liblua5.4-dev \
             luajit2 libluajit2-5.1-dev \
             lua-cjson libcurl4-openssl-dev lua-busted lua-socket lua-check luarocks \
             nginx libnginx-mod-http-lua lua-resty-core redis-server lua-redis lua-nginx-redis \
             openssl curl python3 cmake make gcc pkg-config valgrind clang-format \
             lua-ldoc lua-markdown love xvfb xauth faketime
# Only `make bench` needs these (nodejs brings npm for the TypeScript SDK).
BENCH_DEBS := wrk nodejs linux-perf
# Only `make soak-nginx` needs these (ab drives the load; wrk the gateway mode).
SOAK_DEBS := apache2-utils wrk
# Only `make fuzz` needs these (clang with libFuzzer and its sanitizer runtimes).
FUZZ_DEBS := clang libclang-rt-14-dev
# `make demo` installs only these, plus one interpreter's (DEBS_<lua>);
# `make doc` only DOC_DEBS; `make fake` only python3.
DEMO_DEBS := cmake make gcc pkg-config libcurl4-openssl-dev lua-cjson python3
DEBS_lua5.1 := lua5.1 liblua5.1-0-dev
DEBS_lua5.2 := lua5.2 liblua5.2-dev
DEBS_lua5.3 := lua5.3 liblua5.3-dev
DEBS_lua5.4 := lua5.4 liblua5.4-dev
DEBS_luajit := luajit2 libluajit2-5.1-dev
DOC_DEBS  := lua5.1 lua-ldoc lua-markdown
SPECS     ?= spec
BUILD     ?= build
# The slow runs, one busted run per interpreter; e.g. `make test-asan ASAN_LUAS=lua5.4`.
ASAN_LUAS ?= $(LUAS)
VALGRIND_LUAS ?= lua5.1 lua5.4 luajit

.PHONY: all deps build gateway test test-asan test-stress test-valgrind lint format doc types demo demo-run fake install uninstall bench bench-gateway bench-pacing bench-quota bench-bytes leak fuzz soak soak-nginx clean

all: build

deps:
	@.ci/install-deps $(DEBS)

build: $(LUAS:%=$(BUILD)/%/spotify/core.so)

$(BUILD)/%/spotify/core.so: FORCE
	@cmake -S . -B $(BUILD)/$* -DLUA_INCLUDE_DIR=$(INC_$*) $(CMAKE_FLAGS) > /dev/null
	@cmake --build $(BUILD)/$* -- --no-print-directory -s

FORCE:

# One busted run per interpreter; each ends with busted's summary.
test: deps build lint
	@set -e; for lua in $(LUAS); do \
	  echo "== busted on $$lua"; \
	  SPOTIFY_BUILD=$(BUILD)/$$lua $$lua $(BUSTED) --run=$$lua $(SPECS); \
	done

# Leak detection is on for the interpreters only: every program the specs
# start inherits the preloaded runtime, and python3, sh or gcc leave leaks of
# their own at exit. ASan reads build-asan/leaks/<program name> (%b) when it
# exists, and only the interpreters have one. (The fleet specs' workers
# always run on LuaJIT: its build is made too.) .ci/lsan.supp holds the
# interpreters' own one-time allocations, each entry explained.
# intercept_tls_get_addr=0: GCC 12's (and LLVM 14's) runtime takes a dynamic
# TLS block that its own malloc placed at page offset 16 for a glibc 2.19 one,
# reads a bogus range from the chunk header before it, and the leak checker
# segfaults scanning it ("Tracer caught signal 11", google/sanitizers#1322);
# libgnutls's block does that in some runs. Without the interceptor the
# checker only has fewer roots, so it can report more, never less; glibc >= 2.25
# mallocs these blocks, and they are still reached (no new report).
test-asan: deps build
	@$(MAKE) --no-print-directory build BUILD=build-asan LUAS="$(sort $(ASAN_LUAS) luajit)" \
	  CMAKE_FLAGS=-DSPOTIFY_SANITIZE=ON
	@set -e; asan=$$(gcc -print-file-name=libasan.so); ubsan=$$(gcc -print-file-name=libubsan.so); \
	mkdir -p build-asan/leaks; \
	for lua in $(ASAN_LUAS); do echo detect_leaks=1 > build-asan/leaks/$$lua; done; \
	for lua in $(ASAN_LUAS); do \
	  echo "== busted on $$lua under ASan+UBSan, leak detection on"; \
	  SPOTIFY_BUILD=build-asan/$$lua LD_PRELOAD="$$asan $$ubsan" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:intercept_tls_get_addr=0:include_if_exists=$(CURDIR)/build-asan/leaks/%b \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $$lua $(BUSTED) --run=$$lua $(SPECS); \
	done

# The timing-sensitive spec files STRESS_RUNS (20) times on each of
# STRESS_LUAS beside a CPU burner that stops itself (spec/stress.sh).
STRESS_LUAS ?= lua5.2 luajit
test-stress:
	@$(MAKE) --no-print-directory build LUAS="$(STRESS_LUAS)"
	@STRESS_LUAS="$(STRESS_LUAS)" BUILD=$(BUILD) sh spec/stress.sh

test-valgrind: deps build
	@set -e; for lua in $(VALGRIND_LUAS); do \
	  echo "== busted on $$lua under valgrind"; \
	  SPOTIFY_BUILD=$(BUILD)/$$lua SPOTIFY_SLOW=1 valgrind -q --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
	    $$lua $(BUSTED) --run=$$lua $(SPECS); \
	done

lint:
	@luacheck -q lua spec $(wildcard bin/spotify examples/*.lua examples/*/*.lua bench/*.lua tools/*.lua)
	@clang-format --dry-run --Werror src/*.c src/*.h
	@for r in rockspec/*.rockspec; do luarocks lint $$r || exit 1; done
	@$(MAKE) --no-print-directory doc

# The HTML API reference (config.ld: doc/spotify.luadoc) in build/doc/; any
# ldoc warning fails. lua5.1 runs ldoc because Debian's lua-markdown is 5.1's.
LDOC_CONFIG ?= config.ld
doc:
	@.ci/install-deps $(DOC_DEBS)
	@out=$$(lua5.1 /usr/bin/ldoc --fatalwarnings -c $(LDOC_CONFIG) . 2>&1) || { echo "$$out"; exit 1; }; \
	if echo "$$out" | grep -qi warning; then echo "$$out"; exit 1; fi; \
	echo "doc: build/doc/index.html"

# lua/spotify/types.lua (the LuaLS annotations) from the endpoint rows, the
# options, the counters and the captured answers (tools/gen_types.lua);
# spec/types_spec.lua fails while it is out of date.
TYPES_LUA ?= luajit
types:
	@$(MAKE) --no-print-directory build LUAS=$(TYPES_LUA) > /dev/null
	@LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" LUA_CPATH="$(CURDIR)/$(BUILD)/$(TYPES_LUA)/?.so;;" \
	  $(TYPES_LUA) tools/gen_types.lua > lua/spotify/types.lua.new || { rm -f lua/spotify/types.lua.new; exit 1; }
	@mv lua/spotify/types.lua.new lua/spotify/types.lua
	@echo "types: lua/spotify/types.lua"

# One interpreter: LUA, else the first of LUAS installed, else lua5.4. `lua`
# (or any other name) is taken for the version it reports, so LUA=lua works.
demo:
	@lua="$(LUA)"; \
	if [ -z "$$lua" ]; then \
	  for l in $(LUAS); do if command -v $$l > /dev/null; then lua=$$l; break; fi; done; \
	  lua=$${lua:-lua5.4}; \
	fi; \
	case " $(LUAS) " in *" $$lua "*) ;; *) \
	  v=$$("$$lua" -v 2>&1 < /dev/null) || v=; \
	  case "$$v" in \
	    LuaJIT\ 2.1*) lua=luajit ;; \
	    Lua\ 5.[1-4]*) lua=lua$$(echo "$$v" | cut -c5-7) ;; \
	    *) echo "demo: unknown interpreter LUA=$$lua; use one of: $(LUAS)" >&2; exit 2 ;; \
	  esac; \
	  echo "== LUA=$(LUA) is $$(echo "$$v" | cut -d' ' -f1-2): using $$lua" ;; \
	esac; \
	$(MAKE) --no-print-directory demo-run LUA=$$lua

# Builds the C core quietly (the log is shown only when the build fails),
# then starts the bundled fake Spotify on loopback and runs the examples.
demo-run:
	@LUA=$(LUA) .ci/install-deps $(DEMO_DEBS) $(DEBS_$(LUA))
	@echo "== Building the C core for $(LUA): $(BUILD)/$(LUA)/spotify/core.so"
	@mkdir -p $(BUILD) && $(MAKE) --no-print-directory build LUAS=$(LUA) > $(BUILD)/demo-build.log 2>&1 \
	  || { cat $(BUILD)/demo-build.log; exit 1; }
	@LUA=$(LUA) sh examples/demo.sh

# The gateway (examples/gateway) in the foreground on 127.0.0.1:$(GATEWAY_PORT):
# against the bundled fake unless SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET
# are set; prints what to point a client at. Ctrl-C stops it.
GATEWAY_PORT ?= 8080
gateway:
	@.ci/install-deps nginx libnginx-mod-http-lua lua-resty-core lua-cjson python3 $(DEBS_luajit)
	@mkdir -p $(BUILD) && $(MAKE) --no-print-directory build LUAS=luajit > $(BUILD)/gateway-build.log 2>&1 \
	  || { cat $(BUILD)/gateway-build.log; exit 1; }
	@PORT=$(GATEWAY_PORT) sh examples/gateway/run.sh

# The fake Spotify in the foreground, with the settings to export in another
# shell; Ctrl-C stops it. FAKE_PORT=8000 keeps the port across restarts.
fake:
	@.ci/install-deps python3
	@sh examples/fake.sh

# The module and the command for one interpreter (LUA, default lua5.4) under
# PREFIX: spotify/*.lua in share/lua/<version>, spotify/core.so in
# lib/lua/<version>, and bin/spotify, a launcher that runs that interpreter
# on them (the command itself in share/lua-spotify). DESTDIR stages it all
# elsewhere (a package's root); the launcher names PREFIX's paths.
PREFIX    ?= /usr/local
INSTALL_LUA = $(or $(LUA),lua5.4)
INSTALL_V = $(if $(filter luajit,$(INSTALL_LUA)),5.1,$(patsubst lua%,%,$(INSTALL_LUA)))
LUADIR    = $(PREFIX)/share/lua/$(INSTALL_V)
CMODDIR   = $(PREFIX)/lib/lua/$(INSTALL_V)
install:
	@case " $(LUAS) " in *" $(INSTALL_LUA) "*) ;; *) echo "install: LUA must be one of: $(LUAS)" >&2; exit 2 ;; esac
	@$(MAKE) --no-print-directory build LUAS=$(INSTALL_LUA)
	@set -e; d="$(DESTDIR)"; \
	mkdir -p "$$d$(LUADIR)/spotify/cache" "$$d$(CMODDIR)/spotify" "$$d$(PREFIX)/bin" "$$d$(PREFIX)/share/lua-spotify"; \
	cp lua/spotify/*.lua "$$d$(LUADIR)/spotify/"; \
	cp lua/spotify/cache/*.lua "$$d$(LUADIR)/spotify/cache/"; \
	cp $(BUILD)/$(INSTALL_LUA)/spotify/core.so "$$d$(CMODDIR)/spotify/core.so"; \
	cp bin/spotify "$$d$(PREFIX)/share/lua-spotify/spotify.lua"; \
	interp=$$(command -v $(INSTALL_LUA)); \
	{ echo '#!/bin/sh'; \
	  echo '# lua-spotify $(INSTALL_LUA) (make install): the command on the module under $(PREFIX)'; \
	  echo "exec '$$interp' -e 'package.path = \"$(LUADIR)/?.lua;$(LUADIR)/?/init.lua;\" .. package.path;" \
	    "package.cpath = \"$(CMODDIR)/?.so;\" .. package.cpath' '$(PREFIX)/share/lua-spotify/spotify.lua' \"\$$@\""; \
	} > "$$d$(PREFIX)/bin/spotify"; \
	chmod 755 "$$d$(PREFIX)/bin/spotify"; \
	echo "install: lua-spotify for $(INSTALL_LUA) in $$d$(PREFIX) (the command: $(PREFIX)/bin/spotify)"

uninstall:
	@set -e; d="$(DESTDIR)"; \
	rm -f "$$d$(PREFIX)/bin/spotify" "$$d$(PREFIX)/share/lua-spotify/spotify.lua" "$$d$(CMODDIR)/spotify/core.so"; \
	for f in lua/spotify/*.lua lua/spotify/cache/*.lua; do rm -f "$$d$(LUADIR)/$${f#lua/}"; done; \
	for dir in "$(LUADIR)/spotify/cache" "$(LUADIR)/spotify" "$(CMODDIR)/spotify" "$(PREFIX)/share/lua-spotify"; do \
	  rmdir "$$d$$dir" 2> /dev/null || true; \
	done; \
	echo "uninstall: lua-spotify for $(INSTALL_LUA) removed from $$d$(PREFIX)"

# Benchmarks print figures; they never fail on a number.
bench: deps build
	@.ci/install-deps $(BENCH_DEBS)
	@sh bench/run.sh

# Memory held by dropped clients, per interpreter and inside nginx (figures).
leak: deps build
	@for lua in $(LUAS); do SPOTIFY_BUILD=$(BUILD)/$$lua $$lua bench/leak.lua; done
	@SPOTIFY_BUILD=$(BUILD)/lua5.1 lua5.1 bench/leak.lua nginx

# What shared pacing and the shared 429 penalty cost per call (figures).
bench-pacing: deps build
	@SPOTIFY_BUILD=$(BUILD)/luajit luajit bench/pacing.lua

# Bytes per request on the wire and decoded, plain and gzipped, with libcurl
# and inside nginx (figures).
bench-bytes: deps build
	@SPOTIFY_BUILD=$(BUILD)/luajit luajit bench/bytes.lua

# Requests per second of the gateway against nginx's proxy_pass + proxy_cache
# on the same answers (hits, misses), by wrk (figures).
bench-gateway: deps build
	@.ci/install-deps wrk
	@SPOTIFY_BUILD=$(BUILD)/luajit luajit bench/gateway.lua
	@BENCH_WINDOW=0 SPOTIFY_BUILD=$(BUILD)/luajit luajit bench/gateway.lua

# Quota the response cache, coalescing and batch_window save (figures,
# written into bench/RESULTS.md).
bench-quota: deps build
	@SPOTIFY_BUILD=$(BUILD)/luajit luajit bench/quota.lua

fuzz: deps
	@.ci/install-deps $(FUZZ_DEBS)
	@sh fuzz/run.sh

soak: deps build
	@sh spec/soak.sh

# 100 000 requests through 2 nginx workers running the module; prints worker
# RSS growth, error-log lines and token fetches (SOAK_REQUESTS to change).
soak-nginx: deps build
	@.ci/install-deps $(SOAK_DEBS)
	@lua5.4 spec/soak_nginx.lua

format:
	@clang-format -i src/*.c src/*.h

# Also what an in-tree `luarocks make` leaves: its objects next to the
# sources, the C core it built in ./spotify/, and its build directories.
clean:
	rm -rf build build-asan build-fuzz spotify build.luarocks src/*.o
