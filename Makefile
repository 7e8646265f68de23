# pvrun: `make demo` and `make test` work as the first commands on a fresh
# Debian 12 machine; every target reaches `setup` through a stamp.
SHELL := /bin/bash
STAMPS := .stamps
PVRUN := node dist/cli/main.js
TS_SOURCES := $(shell find src -name '*.ts')

.PHONY: all setup build image demo test lint tap bench clean distclean

all: build

# Set-up: Debian and npm packages (idempotent; scripts/setup.sh checks first).
setup:
	@scripts/setup.sh
	@mkdir -p $(STAMPS) && touch $(STAMPS)/setup

$(STAMPS)/setup: scripts/setup.sh package-lock.json
	@scripts/setup.sh
	@mkdir -p $(STAMPS) && touch $@

# Build: TypeScript, the static guest agent, the BPF objects, the native fast path.
build: $(STAMPS)/tsc guest-agent/all bpf/all native/all

$(STAMPS)/tsc: $(STAMPS)/setup $(TS_SOURCES) tsconfig.json package.json
	npx tsc -p tsconfig.json
	chmod +x dist/cli/main.js
	@touch $@

guest-agent/all: $(STAMPS)/setup FORCE
	@$(MAKE) --no-print-directory -C guest-agent all

bpf/all: $(STAMPS)/setup FORCE
	@$(MAKE) --no-print-directory -C bpf all

native/all: $(STAMPS)/setup FORCE
	@$(MAKE) --no-print-directory -C native all

# The default guest image, cached under $${XDG_CACHE_HOME:-~/.cache}/pvrun by content.
image: build
	@$(PVRUN) image build

demo: image
	@$(PVRUN) demo

# The whole matrix (20-40 min on 2 CPUs), then the hint latency; results in bench/results/<date>-<host>/.
bench: image
	@$(PVRUN) bench
	@$(PVRUN) bench hint-latency

lint: $(STAMPS)/setup
	npx eslint .
	npx tsc -p tsconfig.test.json
	npx prettier --check 'src/**/*.ts' 'test/**/*.ts' 'scripts/*.mjs' '*.js'
	node scripts/check-doc-paths.mjs
	node scripts/check-test-mirror.mjs
	npx dpdm --no-warning --no-tree --exit-code circular:1 'src/**/*.ts' 'test/**/*.ts'

# The suite in two runs of tap. First, two files at a time: those that boot no guest, and
# the benchmark's smoke run (it asserts no figure), started first as the longest. Then, one at
# a time, the files that boot guests and wait on them with bounded waits. Both runs always
# run; the target fails if either did.
SERIAL_TESTS := $(sort $(wildcard test/e2e/*.test.ts test/demo/*.test.ts))
PARALLEL_TESTS := test/bench/matrix.test.ts $(filter-out $(SERIAL_TESTS) test/bench/matrix.test.ts,$(sort $(shell find test -name '*.test.ts')))

tap: image
	@rc=0; npx tap --jobs=2 $(PARALLEL_TESTS) || rc=$$?; npx tap $(SERIAL_TESTS) || rc=$$?; exit $$rc

test: lint tap

clean:
	rm -rf dist $(STAMPS)/tsc .tap
	@$(MAKE) --no-print-directory -C guest-agent clean
	@$(MAKE) --no-print-directory -C bpf clean
	@$(MAKE) --no-print-directory -C native clean

distclean: clean
	rm -rf node_modules $(STAMPS)

FORCE:
