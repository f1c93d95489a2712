# Automation Domain Service. `make run` needs nothing but Go; `make test` too (Postgres and Redis
# variants run when TEST_DATABASE_URL / TEST_REDIS_URL are set, as .ci/run does).

GO        ?= go
BIN       ?= bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
COMPOSE   ?= docker compose -f docker-compose.temporal.yml
WORKFLOWCHECK := go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0

export GOTOOLCHAIN ?= local

.PHONY: run build api worker starter test test-cov bench load fuzz lint fmt db-upgrade dev stop logs clean

# The run targets build, then exec the binary: `go run` exits 1 after an interrupt even when the
# program stops cleanly, which made Ctrl-C end in "make: *** Error 1".

## run: the whole service in one process (embedded Temporal + Web UI, SQLite, in-process limits)
run:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/automation ./cmd/automation
	exec $(BIN)/automation

## build: every binary into ./bin
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/automation ./cmd/automation
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/api ./cmd/api
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/worker ./worker
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/migrate ./cmd/migrate
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/starter ./starter

## api: the API alone (needs TEMPORAL_ADDRESS)
api:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/api ./cmd/api
	exec $(BIN)/api

## worker: the Temporal worker alone (needs TEMPORAL_ADDRESS)
worker:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/worker ./worker
	exec $(BIN)/worker

## starter: build the operator CLI into ./bin/starter
starter:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/starter ./starter

## test: every test (unit, workflow, end to end on the embedded stack; the deploy module's
## chart, compose and .dockerignore tests, which need HELM or helm on PATH, as .ci/run provides)
test:
	$(GO) test -count=1 -timeout 20m ./...
	cd deploy && $(GO) test -count=1 ./...

## test-cov: tests with a coverage report (coverage.html)
test-cov:
	$(GO) test -count=1 -timeout 20m -coverpkg=./... -coverprofile=coverage.out ./...
	$(GO) tool cover -func=coverage.out | tail -1
	$(GO) tool cover -html=coverage.out -o coverage.html

## bench: throughput and latency figures on the embedded stack
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./...

## load: drive a running stack (`make run` in another terminal) over HTTP like its callers and print
## throughput, latency and the service's CPU and RSS; LOAD_ARGS runs one scenario of cmd/loadgen
## (`make load LOAD_ARGS='-scenario events -mode steady -rate 50'`), without it the standard set
LOAD_ARGS ?=
LOAD      := $(BIN)/loadgen
load:
	$(GO) build -o $(LOAD) ./cmd/loadgen
ifeq ($(strip $(LOAD_ARGS)),)
	$(LOAD) -scenario webhooks -mode burst -count 1500 -concurrency 16 -endpoints 10
	$(LOAD) -scenario webhooks -mode steady -rate 20 -duration 10s -endpoints 10
	$(LOAD) -scenario webhooks -mode burst -count 4000 -concurrency 32 -endpoints 0
	$(LOAD) -scenario events -mode burst -count 4000 -concurrency 32 -endpoints 0 -rules 0
	$(LOAD) -scenario events -mode burst -count 1000 -concurrency 16 -endpoints 10 -rules 10
	$(LOAD) -scenario workflows -mode burst -count 800 -concurrency 10
else
	$(LOAD) $(LOAD_ARGS)
endif

# The fuzz targets (package:function): templates, jq, expressions, definitions, inbound signatures.
FUZZ_TARGETS := templating:FuzzRender definition:FuzzJQ definition:FuzzExpression definition:FuzzValidate \
	webhooks:FuzzVerifySignature
FUZZTIME ?= 10m
FUZZTIMEOUT ?= 30m
FUZZFLAGS ?=

## fuzz: every fuzz target for FUZZTIME each (CI runs FUZZTIME=15s); a finding is saved under <package>/testdata/fuzz
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s \
			-timeout $(FUZZTIMEOUT) $(FUZZFLAGS) ./$$pkg; \
	done

## lint: formatting, go vet and Temporal's workflow determinism check
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...
	$(GO) run $(WORKFLOWCHECK) ./workflows/...

fmt:
	gofmt -w $$(git ls-files '*.go')

## db-upgrade: apply the database migrations and exit
db-upgrade:
	$(GO) run ./cmd/migrate

## dev: the production shape in Docker (Postgres, Redis, Temporal, Web UI, Mailpit, API, worker)
dev:
	$(COMPOSE) up --build -d
	@echo "API http://localhost:8090  Temporal UI http://localhost:8080  Mailpit http://localhost:8025"

stop:
	$(COMPOSE) down

logs:
	$(COMPOSE) logs -f api worker

clean:
	rm -rf $(BIN) coverage.out coverage.html
