# The newcomer's two commands: `make dev` runs the service locally,
# `make test` runs every test. Both need Go and PostgreSQL's server
# binaries (15+, with contrib) and nothing running beforehand.
GO ?= go
SQLC = $(GO) tool -modfile=tools/go.mod sqlc

.PHONY: dev test generate check-generated vet build bench

dev:
	$(GO) run ./cmd/fieldseal dev

test:
	$(GO) test -race -count=1 ./...

build:
	$(GO) build -o bin/fieldseal ./cmd/fieldseal

generate:
	$(SQLC) generate

# Fails when the committed sqlc output differs from what sqlc generates.
check-generated:
	$(SQLC) diff

vet:
	$(GO) vet ./...

# Service against PostgreSQL's own limit (pgbench), on this machine; writes
# bench/RESULTS.md, with the hot-subject rows. About 3.5 minutes; stops by
# itself.
bench:
	$(GO) run ./bench
