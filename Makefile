# dockerinit: `make build`, `make test`, `make demo`. See README.md.
GO       ?= go
GOFLAGS  ?= -mod=mod
export GOFLAGS

.PHONY: build test unit vet clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/ ./cmd/...

vet:
	$(GO) vet ./...

# Unit tests only (no QEMU): quick local runs.
unit:
	DOCKERINIT_QEMU=0 $(GO) test ./...

clean:
	rm -rf bin out
