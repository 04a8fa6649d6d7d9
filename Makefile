# Offboard. `make run` and `make test` are all a newcomer needs (README.md).
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)
# Packages whose tests run under the race detector; msgraph's connector is too
# large to build twice on a 2-core machine, so it runs without -race.
# Packages that define workflows, checked by workflowcheck.
WORKFLOW_PKGS = ./workflows/... ./evidence/...
RACE_PKGS = $(shell $(GO) list ./... | grep -v /connectors/entra)

.PHONY: run test build setup setup-run vet lint workflowcheck hostile bench histories fuzz clean stack setup-stack stack-faults

run: setup-run build ## the whole service on the embedded default
	@scripts/run.sh

build:
	$(GO) build -o $(BIN)/ ./worker ./starter ./sandbox

setup-run:
	@scripts/setup.sh run

# docker-compose.yml's production stack without containers: PostgreSQL, the
# Temporal server built at the compose file's version, its setup scripts, the
# Web UI, worker and starter on the sandbox (scripts/stack.sh; ports +10000).
stack: setup-stack build
	@scripts/stack.sh

setup-stack:
	@scripts/setup.sh stack

# The stack's fault test with a burst of 50: the Temporal server killed with
# SIGKILL mid-burst, then PostgreSQL restarted; every run completes, no step twice.
# make chaos-stack runs make chaos against this stack's Temporal.
stack-faults: setup-stack build
	OFFBOARD_STACK_TESTS=1 OFFBOARD_STACK_BURST=50 $(GO) test -count=1 -timeout 20m -run 'TestProductionStack' -v ./internal/integration/

setup:
	@scripts/setup.sh test

vet:
	$(GO) vet ./...

lint: setup
	$(BIN)/staticcheck ./...

workflowcheck: setup
	$(BIN)/workflowcheck -config workflowcheck.config.yaml $(WORKFLOW_PKGS)

test: setup setup-stack build vet workflowcheck ## everything CI checks
	$(BIN)/staticcheck ./...
	OFFBOARD_BROWSER_TESTS=1 OFFBOARD_STACK_TESTS=1 $(GO) test -race -count=1 -timeout 30m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 15m ./connectors/entra/...
	@$(MAKE) --no-print-directory hostile
	@$(MAKE) --no-print-directory simulate

# Hostile servers (internal/testenv/hostile): each connector's table of servers
# that behave unlike our simulators. Every package prints
# "hostile: <pkg>: N cases, M false claims"; the total must have 0 false claims.
# The full output is kept in .offboard/hostile.log.
HOSTILE_PKGS = ./connectors/... ./activities/...
hostile:
	@mkdir -p .offboard; set -o pipefail; \
	$(GO) test -count=1 -timeout 15m -run Hostile -v $(HOSTILE_PKGS) 2>&1 | tee .offboard/hostile.log | \
	  awk '/^hostile: /{print; c=$$0; sub(/.*: /, "", c); split(c, f, " "); n+=f[1]; m+=f[3]} /^(--- FAIL|FAIL|ok )/{print} \
	       END{printf "hostile servers: %d cases, %d false claims\n", n, m; if (m > 0) exit 1}'

# Time-to-contain, burst throughput against the no-op ceiling, worker RSS
# (table + .offboard/bench.json); the same on the production stack's Temporal
# on PostgreSQL (.offboard/bench-stack.json); then the HRIS relay: webhooks accepted per
# second sustained for 30 s against a dev server, and its added latency; then a
# reconcile of 50,000 accounts (Okta, SCIM and IAM simulators, OFFBOARD_BENCH_ACCOUNTS):
# accounts/s, worker peak RSS, each target's requests/s against its budget.
bench: setup-run setup-stack build
	$(GO) run ./internal/bench -out .offboard/bench.json
	$(GO) run ./internal/bench -stack -out .offboard/bench-stack.json
	OFFBOARD_BENCH_TEMPORAL=devserver $(GO) test ./relay -run '^$$' -bench BenchmarkRelay -benchtime 30s
	$(GO) test ./internal/workerapp -run '^$$' -bench BenchmarkReconcile -benchtime 1x -timeout 30m

# The Deprovision workflow under seeded random scenarios (workflows/simulation_test.go):
# SEEDS scenarios without the race detector (the race run of make test does 300),
# printing scenarios per second; a failure prints its seed and a shrunk scenario.
# Then SERVER_SEEDS of them on a real dev server, time compressed, whose
# histories are counted and replayed (the test environment keeps none).
SEEDS ?= 2000
SERVER_SEEDS ?= 12
.PHONY: simulate
simulate: setup
	$(GO) test -count=1 -timeout 60m -run 'TestSimulation$$|TestSimulationOnServer' -v ./workflows -sim.seeds $(SEEDS) -sim.server $(SERVER_SEEDS) \
	  | grep -v '^=== RUN'; exit $${PIPESTATUS[0]}

# The same invariants at system level (internal/chaos): N terminations as signed
# webhooks through the relay while the worker is SIGKILLed KILLS times, the dev
# server restarted once and every simulator fails 30 % of calls; prints a table
# (and .offboard/chaos/chaos.json), exits non-zero on any loss or unsafe repeat.
N ?= 500
KILLS ?= 5
.PHONY: chaos
chaos: setup-run build
	$(GO) run ./internal/chaos -n $(N) -kills $(KILLS)

# The same against the production stack's Temporal on PostgreSQL (scripts/stack.sh
# temporal); its restart stops and starts the server and PostgreSQL together.
.PHONY: chaos-stack
chaos-stack: setup-stack build
	$(GO) run ./internal/chaos -stack -n $(N) -kills $(KILLS) -dir .offboard/chaos-stack

# Re-record the replay corpus in testdata/histories from the integration scenarios.
histories: setup-run
	OFFBOARD_RECORD_HISTORIES=1 $(GO) test -count=1 -run 'TestScenarios|TestNonHuman' ./internal/integration/

FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf .offboard
