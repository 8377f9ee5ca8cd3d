# Gig'MCP — everything runs through the pinned Bun from node_modules.
SHELL := /bin/bash
BUN := node_modules/.bin/bun
SOURCES := $(shell find src -type f) package.json

# Development defaults for `make run`; override on the command line or in the environment.
export GIG_DATA_DIR ?= $(CURDIR)/data
export GIG_LISTEN ?= 127.0.0.1:8080
export GIG_SANDBOX ?= off

.PHONY: run build test bench lint deps system-deps migrations clean

## run: install what is missing, build, and start the gateway in development mode
run: system-deps build
	./dist/gigmcp serve --dev

## build: compile the single executable dist/gigmcp
build: dist/gigmcp

dist/gigmcp: node_modules/.installed $(SOURCES)
	$(BUN) build --compile --minify --sourcemap src/main.ts --outfile dist/gigmcp

## test: the whole test suite; the last line is "N passed, N failed"
test: node_modules/.installed build
	$(BUN) scripts/test.ts

## bench: benchmarks, printed as ratios measured side by side
bench: node_modules/.installed build
	$(BUN) scripts/bench.ts

## lint: type-check everything
lint: node_modules/.installed
	node_modules/.bin/tsc -p .

## migrations: regenerate SQL migrations after editing src/store/schema.ts
migrations: node_modules/.installed
	node_modules/.bin/drizzle-kit generate

deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## system-deps: Debian packages the gateway needs at run time (installed only if missing)
system-deps:
	scripts/system-deps.sh runtime

clean:
	rm -rf dist results tests/artifacts
