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

# --- QEMU test rig (qemu-tests/) ---
.PHONY: qemu-fixture demo

# Every test, the QEMU boots included: they need root and the packages .ci/run installs,
# and skip naming what is missing (CI=true makes that a failure; DOCKERINIT_QEMU=0 skips
# them). GOTESTFLAGS=-v shows the per-boot timings.
test:
	$(GO) test $(GOTESTFLAGS) -timeout 60m ./...

# The btrfs disk with the dockerd-built images that the boots use (reused while unchanged).
qemu-fixture:
	bash qemu-tests/fixture.sh out/fixture

# Boot sample_image in QEMU on this terminal: systemd to a login prompt (root, no password;
# Ctrl-a x quits). DEMO_POWEROFF=1 boots a small init that shows what booted, then powers off.
# A missing prerequisite is named with its Debian package, not installed: run .ci/run or
# apt-get install it.
demo: build
	bash qemu-tests/demo.sh out/demo
