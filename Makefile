# The newcomer's two commands: `make dev` runs the service locally,
# `make test` runs every test. Both need Go and PostgreSQL's server
# binaries (15+, with contrib) and nothing running beforehand.
GO ?= go
SQLC = $(GO) tool -modfile=tools/go.mod sqlc

.PHONY: dev test test-citus generate check-generated vet build bench bench-citus

dev:
	$(GO) run ./cmd/fieldseal dev

test:
	$(GO) test -race -count=1 ./...

# The Citus tests (build tag citus): a coordinator and two workers from
# pglocal, for the migrations and for the API. Citus is not packaged for
# Debian: ../shared/citus/build.sh builds and installs it (about 5
# minutes, as root; nothing to do once installed).
CITUS_BUILD ?= ../shared/citus/build.sh
# The API tests run against the coordinator (FIELDSEAL_TEST_CITUS=1: each
# test's database is created on every node and distributed): the whole
# handlers suite (TestServiceOnCitus among them: one shard per request, no
# secret in any node's log) but its rerun through PgBouncer, and of the
# command's tests those of audit archive and of revocation reaching two
# servers (the others' helpers use single-node SQL: pg_temp tables,
# UPDATEs Citus refuses).
CITUS_CMD_TESTS = TestAuditArchive$$|TestRevocationReachesEveryInstance|TestAuditUsage$$
test-citus:
	@if [ -x "$(CITUS_BUILD)" ]; then "$(CITUS_BUILD)"; \
	elif [ ! -f /usr/lib/postgresql/15/lib/citus.so ]; then \
	  echo "Citus is not installed and $(CITUS_BUILD) is missing: install Citus 13 for PostgreSQL 15, or set CITUS_BUILD"; exit 1; fi
	$(GO) test -tags citus -count=1 -run Citus ./migrations/ ./cmd/fieldseal/
	FIELDSEAL_TEST_CITUS=1 $(GO) test -tags citus -count=1 -skip TestWholeSuiteThroughPgBouncer ./handlers/
	FIELDSEAL_TEST_CITUS=1 $(GO) test -tags citus -count=1 -run '$(CITUS_CMD_TESTS)' ./cmd/fieldseal/

build:
	$(GO) build -o bin/fieldseal ./cmd/fieldseal

generate:
	$(SQLC) generate

# Fails when the committed sqlc output differs from what sqlc generates.
check-generated:
	$(SQLC) diff

# vet also checks that only package hsm (PKCS#11) needs cgo.
vet:
	$(GO) vet ./...
	$(GO) vet -tags citus ./...
	CGO_ENABLED=0 $(GO) build ./ ./auth ./client ./db ./handlers

# Service against PostgreSQL's own limit (pgbench), on this machine; writes
# bench/RESULTS.md, with the hot-subject, bulk and archive rows. About 9
# minutes; stops by itself.
bench:
	$(GO) run ./bench

# The service rows and the bulk ones against a Citus coordinator and two
# workers on this machine, with PostgreSQL's CPU on each node; writes
# bench/RESULTS-citus.md. About 2 minutes (Citus installed: make test-citus).
bench-citus:
	$(GO) run ./bench -citus
