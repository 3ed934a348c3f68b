# Thin wrapper: CMake builds the C core once per interpreter; busted runs the
# suite once per interpreter. `make test` installs missing Debian packages.
LUAS      := lua5.1 lua5.4 luajit
INC_lua5.1 := /usr/include/lua5.1
INC_lua5.4 := /usr/include/lua5.4
INC_luajit := /usr/include/luajit-2.1
BUSTED    := /usr/bin/busted
DEBS      := lua5.1 liblua5.1-0-dev lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev \
             lua-cjson libcurl4-openssl-dev lua-busted lua-socket lua-check luarocks \
             nginx libnginx-mod-http-lua lua-resty-core redis-server lua-redis \
             openssl curl python3 cmake make gcc pkg-config valgrind clang-format \
             lua-ldoc lua-markdown love xvfb xauth
# Only `make bench` needs these (nodejs brings npm for the TypeScript SDK).
BENCH_DEBS := wrk nodejs linux-perf
# Only `make fuzz` needs these (clang with libFuzzer and its sanitizer runtimes).
FUZZ_DEBS := clang libclang-rt-14-dev
SPECS     ?= spec
BUILD     ?= build

.PHONY: all deps build test test-asan test-valgrind lint format doc demo bench leak fuzz soak clean

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

test-asan: deps build
	@$(MAKE) --no-print-directory build BUILD=build-asan CMAKE_FLAGS=-DSPOTIFY_SANITIZE=ON
	@set -e; asan=$$(gcc -print-file-name=libasan.so); ubsan=$$(gcc -print-file-name=libubsan.so); \
	for lua in lua5.4 lua5.1; do \
	  echo "== busted on $$lua under ASan+UBSan"; \
	  SPOTIFY_BUILD=build-asan/$$lua LD_PRELOAD="$$asan $$ubsan" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $$lua $(BUSTED) --run=$$lua $(SPECS); \
	done

test-valgrind: deps build
	@set -e; for lua in lua5.4; do \
	  echo "== busted on $$lua under valgrind"; \
	  SPOTIFY_BUILD=$(BUILD)/$$lua SPOTIFY_SLOW=1 valgrind -q --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
	    $$lua $(BUSTED) --run=$$lua $(SPECS); \
	done

lint:
	@luacheck -q lua spec $(wildcard bin/spotify examples/*.lua examples/*/*.lua bench/*.lua)
	@clang-format --dry-run --Werror src/*.c src/*.h
	@for r in rockspec/*.rockspec; do luarocks lint $$r || exit 1; done
	@$(MAKE) --no-print-directory doc

# The HTML API reference (config.ld: doc/spotify.luadoc) in build/doc/; any
# ldoc warning fails. lua5.1 runs ldoc because Debian's lua-markdown is 5.1's.
LDOC_CONFIG ?= config.ld
doc: deps
	@out=$$(lua5.1 /usr/bin/ldoc --fatalwarnings -c $(LDOC_CONFIG) . 2>&1) || { echo "$$out"; exit 1; }; \
	if echo "$$out" | grep -qi warning; then echo "$$out"; exit 1; fi; \
	echo "doc: build/doc/index.html"

# Builds, starts the bundled fake Spotify on loopback, runs the example.
demo: deps build
	@sh examples/demo.sh

# Benchmarks print figures; they never fail on a number.
bench: deps build
	@.ci/install-deps $(BENCH_DEBS)
	@sh bench/run.sh

# Memory held by dropped clients, per interpreter and inside nginx (figures).
leak: deps build
	@for lua in $(LUAS); do SPOTIFY_BUILD=$(BUILD)/$$lua $$lua bench/leak.lua; done
	@SPOTIFY_BUILD=$(BUILD)/lua5.1 lua5.1 bench/leak.lua nginx

fuzz: deps
	@.ci/install-deps $(FUZZ_DEBS)
	@sh fuzz/run.sh

soak: deps build
	@sh spec/soak.sh

format:
	@clang-format -i src/*.c src/*.h

clean:
	rm -rf build build-asan spotify
