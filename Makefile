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
	rm -rf bin
	find out -mindepth 1 -maxdepth 1 ! -name go.mod -exec rm -rf {} + 2>/dev/null || true

# --- Fuzzing ---
.PHONY: fuzz

# Every fuzz target of the repository, FUZZTIME each: go test fuzzes one target of one package
# at a time, so each runs alone. go test -list finds them, so a new target is run without being
# listed here. A failure stops the run; its input is saved under the package's testdata/fuzz/,
# where plain go test replays it: commit it with the fix.
# Go 1.26's fuzzing coordinator can fail a target with a bare "context deadline exceeded" as
# FUZZTIME ends, on a loaded machine, with no failing input (go.dev/issue/75804, fixed in Go
# 1.27): that one result is reported and passed over. Drop the check with Go 1.27.
FUZZTIME ?= 30s

fuzz:
	@targets=$$($(GO) test -list '^Fuzz' ./...) || { echo "$$targets"; exit 1; }; \
	log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	echo "$$targets" | awk '/^Fuzz/ { names[n++] = $$1; next } /^ok/ { for (i = 0; i < n; i++) print $$2, names[i] } { n = 0 }' | \
	while read -r pkg name; do \
		echo "fuzz: $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg >"$$log" 2>&1 && { tail -n 1 "$$log"; continue; }; \
		cat "$$log"; \
		if grep -qx '    context deadline exceeded' "$$log" && ! grep -q 'Failing input written to' "$$log"; then \
			echo "fuzz: $$name: the Go fuzzing coordinator's end-of-time race (go.dev/issue/75804), not a failing input: passed over"; \
			continue; \
		fi; \
		exit 1; \
	done

# --- QEMU test rig (qemu-tests/) ---
.PHONY: deps qemu-fixture demo

# The Debian packages of internal/hostdeps/packages that this machine lacks, installed with
# apt-get and named first (make demo and make test run it before anything else). Needs root;
# DOCKERINIT_NO_INSTALL=1 installs nothing: a missing package then fails, naming the apt-get
# line to run (as it does for anyone but root, with sudo).
deps:
	bash qemu-tests/deps.sh

# Every test, the QEMU boots included (they need root), after deps. A test that still lacks
# something skips naming it (CI=true makes that a failure; DOCKERINIT_QEMU=0 skips the boots on
# purpose). GOTESTFLAGS=-v shows the per-boot timings.
test: deps
	$(GO) test $(GOTESTFLAGS) -timeout 60m ./...

# The btrfs disk with the dockerd-built images that the boots use (reused while unchanged).
qemu-fixture: build
	bash qemu-tests/fixture.sh out/fixture bin/dockerinit

# Boot sample_image in QEMU on this terminal: systemd to a login prompt (root, no password;
# Ctrl-a x quits). DEMO_POWEROFF=1 boots a small init that shows what booted, then powers off.
# deps comes first: go build may have modules to download, over HTTPS (ca-certificates).
demo: deps
	$(MAKE) build
	bash qemu-tests/demo.sh out/demo

# --- Performance (bench/) ---
.PHONY: bench

# dockerinit against Debian's initramfs-tools and dracut, and against a floor (bench/floor: a static
# C /init that only loads dockerinit's modules, mounts the root and switches to it; gcc builds it),
# in one run on this machine (about a quarter of an hour): initramfs size, build time, the UKI's size
# (mkbootimg uki) against its kernel and initramfs apart, boots under QEMU, Go start-up, top layer
# apply against cp -a, snapshot cost. Writes bench/results/latest.{md,svg,json} and the README's
# Performance section. Needs root, the QEMU test packages and the Debian mirror: apt-get installs
# the baselines into throwaway copies of the image, never on this machine, and a missing host
# package is named, not installed (make deps installs them). BENCHFLAGS=-rounds=5 for more runs;
# BENCHFLAGS=-only=floor boots dockerinit and the floor alone, in about two minutes, without
# touching the results.
bench: build
	CGO_ENABLED=0 $(GO) run ./bench/cmd/bench $(BENCHFLAGS)

# --- Hooks for other initramfs generators (hooks/) ---
.PHONY: install-hooks

# Install the hooks that run `dockerinit prepare` inside mkinitcpio, initramfs-tools or dracut
# initramfs images (README: "Keeping your distribution's initramfs"). They need the binary:
# make build && install -m 0755 bin/dockerinit /usr/local/sbin/. Then rebuild the initramfs
# with the generator. GENERATORS picks some of them; DESTDIR installs into another root.
DESTDIR    ?=
GENERATORS ?= initramfs-tools dracut mkinitcpio

install-hooks:
	@for g in $(GENERATORS); do case $$g in \
	initramfs-tools) \
		install -D -m 0755 hooks/initramfs-tools/hooks/dockerinit $(DESTDIR)/etc/initramfs-tools/hooks/dockerinit && \
		install -D -m 0755 hooks/initramfs-tools/scripts/local-premount/dockerinit $(DESTDIR)/etc/initramfs-tools/scripts/local-premount/dockerinit && \
		install -D -m 0755 hooks/initramfs-tools/scripts/local-bottom/dockerinit $(DESTDIR)/etc/initramfs-tools/scripts/local-bottom/dockerinit ;; \
	dracut) \
		install -D -m 0755 -t $(DESTDIR)/usr/lib/dracut/modules.d/90dockerinit hooks/dracut/90dockerinit/module-setup.sh hooks/dracut/90dockerinit/dockerinit-prepare.sh hooks/dracut/90dockerinit/dockerinit-mount-root.sh ;; \
	mkinitcpio) \
		install -D -m 0644 hooks/mkinitcpio/install/dockerinit $(DESTDIR)/etc/initcpio/install/dockerinit && \
		install -D -m 0644 hooks/mkinitcpio/hooks/dockerinit $(DESTDIR)/etc/initcpio/hooks/dockerinit ;; \
	*) echo "install-hooks: unknown generator $$g (want initramfs-tools, dracut or mkinitcpio)" >&2; exit 1 ;; \
	esac || exit 1; echo "installed the $$g hook under $(DESTDIR)/"; done
