# rootstock: `make` builds the static release binaries, `make check` runs every
# test tier that this machine can run, `make install DESTDIR=...` installs,
# `make deb` builds the Debian package.

# musl where its target is installed, else glibc linked statically. Decided
# once, when make starts (`:=`): a target that first installs the musl target
# (`deps`, for `demo` and `test`) runs the build in a new make, which sees it.
ifeq ($(origin TARGET),undefined)
TARGET := $(shell rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl \
	&& echo x86_64-unknown-linux-musl || echo x86_64-unknown-linux-gnu)
endif
# `make static` puts both static programs here: the boot program
# (rootstock-boot, what goes into an initramfs) and the host tool (rootstock).
STATIC_DIR := target/static
BOOT_BIN := $(STATIC_DIR)/rootstock-boot
HOST_BIN := $(STATIC_DIR)/rootstock
STATIC_FLAGS := -C target-feature=+crt-static -C relocation-model=static
# The boot program is built against a std compiled without its backtrace
# symbolizer (gimli, addr2line, demangler: ~250 KB that a stripped PID 1 never
# uses; panic messages stay). That needs `-Zbuild-std`, enabled on the stable
# toolchain by RUSTC_BOOTSTRAP for this one build, and the rust-src component.
# Two more size settings of that build, behaviour unchanged: std's
# `optimize_for_size` (its smaller implementations, e.g. of sorting and of integer
# formatting) and `-Zlocation-detail=none` (a panic message keeps its text
# but no longer names the source file and line).
BOOT_STD := -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
BOOT_FLAGS := -Zlocation-detail=none
# arm64: the same two programs for aarch64-unknown-linux-musl, linked by
# rust-lld (shipped with Rust: no cross C toolchain), into target/static-arm64/.
ARM64_TARGET := aarch64-unknown-linux-musl
ARM64_DIR := target/static-arm64
ARM64_FLAGS := $(STATIC_FLAGS) -C linker=rust-lld -C linker-flavor=ld.lld
BIN_ENV = ROOTSTOCK_BOOT_BIN=$(CURDIR)/$(BOOT_BIN) ROOTSTOCK_HOST_BIN=$(CURDIR)/$(HOST_BIN) \
	ROOTSTOCK_MKCFS_BIN=$(CURDIR)/$(STATIC_DIR)/mkcfs \
	ROOTSTOCK_ARM64_BOOT_BIN=$(CURDIR)/$(ARM64_DIR)/rootstock-boot ROOTSTOCK_ARM64_HOST_BIN=$(CURDIR)/$(ARM64_DIR)/rootstock
PREFIX ?= /usr
DESTDIR ?=

VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
DRACUTDIR ?= /usr/lib/dracut/modules.d
DEB := target/debian/rootstock_$(VERSION)-1_amd64.deb
DEB_ARM64 := target/debian/rootstock_$(VERSION)-1_arm64.deb
MAN := target/man/rootstock.8.gz
CARGO_DEB_VERSION := 3.8.0
CARGO_FUZZ_VERSION := 0.13.2

# Debian packages for the whole test suite (namespace, probe, module and QEMU
# tests) and for checking the Debian package (lintian).
TEST_PACKAGES := ostree ostree-boot e2fsprogs xfsprogs btrfs-progs dosfstools erofs-utils gdisk fdisk \
	util-linux cpio gawk make shellcheck qemu-system-x86 dracut-core systemd udev kmod busybox-static zstd \
	ovmf systemd-boot-efi mtools debootstrap lintian help2man qemu-user-static qemu-system-arm qemu-efi-aarch64 fsverity

SHELL_SCRIPTS := dracut-module/98rootstock/rootstock-pre-pivot.sh dracut-module/98rootstock/rootstock-generator.sh tests/fixtures/*.sh benches/*.sh .ci/run qemu-tests/run \
	qemu-tests/trixie/ostree-ready.sh qemu-tests/trixie/install-kernel.sh qemu-tests/trixie/testos-report \
	qemu-tests/trixie/testos-soft-reboot qemu-tests/trixie/testos-rollback qemu-tests/trixie/testos-health debian/manpage \
	kernel-hooks/postinst.d-rootstock kernel-hooks/postrm.d-rootstock kernel-hooks/50-rootstock.install

.PHONY: all static static-arm64 man deps check qemu-test qemu-test-full bench test demo demo-boot install deb deb-arm64 deb-check clean fuzz-smoke
all: static

static:
	RUSTFLAGS="$(STATIC_FLAGS)" cargo build --release --locked --target $(TARGET) -p rootstock
	RUSTC_BOOTSTRAP=1 RUSTFLAGS="$(STATIC_FLAGS) $(BOOT_FLAGS)" cargo build --release --locked --target $(TARGET) \
	  -p rootstock-boot --target-dir target/boot $(BOOT_STD) \
	  || RUSTFLAGS="$(STATIC_FLAGS)" cargo build --release --locked --target $(TARGET) -p rootstock-boot \
	       --target-dir target/boot
	mkdir -p $(STATIC_DIR)
	cp -f target/$(TARGET)/release/rootstock $(HOST_BIN)
	cp -f target/boot/$(TARGET)/release/rootstock-boot $(BOOT_BIN)
	@ls -l $(BOOT_BIN) $(HOST_BIN)
	@# Test tooling, not shipped: composefs images with fs-verity, written
	@# inside the composefs scenario's VM (qemu-tests/src/composefs.rs).
	RUSTFLAGS="$(STATIC_FLAGS)" cargo build -q --release --locked --target $(TARGET) -p rootstock-mkcfs
	cp -f target/$(TARGET)/release/mkcfs $(STATIC_DIR)/mkcfs

# The arm64 programs (issue 12), cross-built from any host.
static-arm64:
	rustup target add $(ARM64_TARGET)
	RUSTFLAGS="$(ARM64_FLAGS)" cargo build --release --locked --target $(ARM64_TARGET) -p rootstock \
	  --target-dir target/arm64
	RUSTC_BOOTSTRAP=1 RUSTFLAGS="$(ARM64_FLAGS) $(BOOT_FLAGS)" cargo build --release --locked --target $(ARM64_TARGET) \
	  -p rootstock-boot --target-dir target/arm64-boot $(BOOT_STD)
	mkdir -p $(ARM64_DIR)
	cp -f target/arm64/$(ARM64_TARGET)/release/rootstock $(ARM64_DIR)/rootstock
	cp -f target/arm64-boot/$(ARM64_TARGET)/release/rootstock-boot $(ARM64_DIR)/rootstock-boot
	@ls -l $(ARM64_DIR)/rootstock-boot $(ARM64_DIR)/rootstock

# rootstock(8), from the host tool's --help (help2man).
man: static
	debian/manpage $(HOST_BIN) $(VERSION) $(MAN)

# Everything the tests and the package need, on a fresh Debian 12 machine (as root).
# arm64: dpkg learns the architecture, so that apt-get download fetches
# Debian's arm64 kernel, busybox-static and systemd-boot (nothing of it is
# installed).
deps:
	dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
	apt-get -o DPkg::Lock::Timeout=600 -qq update
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y \
	  --no-install-recommends -o Dpkg::Options::=--force-confold $(TEST_PACKAGES) >/dev/null
	rustup target add x86_64-unknown-linux-musl || echo "no musl target: building static glibc"
	rustup component add rust-src || echo "no rust-src: the boot program is built with the full std"
	cargo deb --version 2>/dev/null | grep -qF $(CARGO_DEB_VERSION) \
	  || cargo install --locked cargo-deb@$(CARGO_DEB_VERSION)
	cargo fuzz --version 2>/dev/null | grep -qF $(CARGO_FUZZ_VERSION) \
	  || cargo install --locked cargo-fuzz@$(CARGO_FUZZ_VERSION)
	tests/fixtures/fetch-kernel.sh .cache/kernel
	tests/fixtures/fetch-kernel.sh .cache/kernel arm64

# Unit, namespace and static-binary tests (x86_64 and arm64), lints.
check: static static-arm64
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	shellcheck -s bash dracut-module/98rootstock/module-setup.sh
	shellcheck $(SHELL_SCRIPTS)
	$(BIN_ENV) cargo test --workspace --exclude rootstock-qemu-tests --locked

# Boots under QEMU (software emulation): rootstock's initramfs, dracut, the baseline.
# CI (`make test`) runs a seeded sample of the power cuts, to stay within its
# hour: 8 kills during counted boots, 3 on xfs, 4 while blessing, 1 during a
# rollback (each run prints its seed; ROOTSTOCK_POWERCUT_SEED replays it).
# qemu-test-full runs the full set (the tests' defaults: 50, 12, 20, 3).
POWERCUT_SAMPLE = ROOTSTOCK_POWERCUT_KILLS=$${ROOTSTOCK_POWERCUT_KILLS:-8} \
	ROOTSTOCK_POWERCUT_XFS_KILLS=$${ROOTSTOCK_POWERCUT_XFS_KILLS:-3} \
	ROOTSTOCK_POWERCUT_BLESS_KILLS=$${ROOTSTOCK_POWERCUT_BLESS_KILLS:-4} \
	ROOTSTOCK_ROLLBACK_POWERCUTS=$${ROOTSTOCK_ROLLBACK_POWERCUTS:-1}
# The package too: tests/debian_package.rs installs it in a trixie tree.
qemu-test: static static-arm64 deb
	ROOTSTOCK_QEMU_NO_APT=1 $(POWERCUT_SAMPLE) $(BIN_ENV) qemu-tests/run
qemu-test-full: static static-arm64 deb
	ROOTSTOCK_QEMU_NO_APT=1 $(BIN_ENV) qemu-tests/run

# The boot benchmark (QEMU under software emulation, about 15 minutes):
# dracut + ostree, dracut + rootstock, rootstock's QEMU and generic sets and
# a hand-written busybox /init, BENCH_N boots each, interleaved: initramfs
# phase, QEMU start -> init, image bytes, memory in use -> benches/boot.md;
# the QEMU set with each compression -> benches/compression.md. The normal
# suite runs the table once per variant as a smoke test.
BENCH_N ?= 5
bench: static
	ROOTSTOCK_BENCH_N=$(BENCH_N) ROOTSTOCK_BENCH_OUT=$(CURDIR)/benches $(BIN_ENV) \
	  qemu-tests/run --include-ignored --exact bench_boot_table bench_compression bench_steps \
	    bench_arm64_beside_x86_64

# Boot a sample OSTree system in QEMU through rootstock's initramfs.
demo: deps
	$(MAKE) --no-print-directory demo-boot
demo-boot: static
	$(BIN_ENV) cargo run --locked -q -p rootstock-qemu-tests --example demo

# The whole suite, from a fresh machine: the README's test command.
test: deps
	ROOTSTOCK_REQUIRE_ROOT_TESTS=1 $(MAKE) --no-print-directory check
	$(MAKE) --no-print-directory deb-check
	$(MAKE) --no-print-directory fuzz-smoke FUZZ_SECONDS=5
	$(MAKE) --no-print-directory qemu-test

# The package's file set (see [package.metadata.deb] in Cargo.toml).
install: static man
	install -D -m 0755 $(HOST_BIN) $(DESTDIR)$(PREFIX)/bin/rootstock
	install -D -m 0755 $(BOOT_BIN) $(DESTDIR)$(PREFIX)/lib/rootstock/rootstock-boot
	install -d $(DESTDIR)$(PREFIX)/lib/rootstock/initramfs
	install -m 0644 initramfs/*.list $(DESTDIR)$(PREFIX)/lib/rootstock/initramfs/
	install -d $(DESTDIR)$(DRACUTDIR)/98rootstock
	install -m 0755 dracut-module/98rootstock/*.sh $(DESTDIR)$(DRACUTDIR)/98rootstock/
	install -m 0644 dracut-module/98rootstock/*.service $(DESTDIR)$(DRACUTDIR)/98rootstock/
	install -D -m 0644 systemd/rootstock-bless.service $(DESTDIR)$(PREFIX)/lib/systemd/system/rootstock-bless.service
	install -D -m 0644 systemd/rootstock-rollback.service $(DESTDIR)$(PREFIX)/lib/systemd/system/rootstock-rollback.service
	install -D -m 0755 kernel-hooks/postinst.d-rootstock $(DESTDIR)/etc/kernel/postinst.d/rootstock
	install -D -m 0755 kernel-hooks/postrm.d-rootstock $(DESTDIR)/etc/kernel/postrm.d/rootstock
	install -D -m 0755 kernel-hooks/50-rootstock.install $(DESTDIR)$(PREFIX)/lib/kernel/install.d/50-rootstock.install
	install -D -m 0644 kernel-hooks/default-rootstock $(DESTDIR)/etc/default/rootstock
	install -D -m 0644 $(MAN) $(DESTDIR)$(PREFIX)/share/man/man8/rootstock.8.gz
	install -D -m 0644 debian/copyright $(DESTDIR)$(PREFIX)/share/doc/rootstock/copyright
	gzip -9n <debian/changelog >$(DESTDIR)$(PREFIX)/share/doc/rootstock/changelog.Debian.gz
	chmod 0644 $(DESTDIR)$(PREFIX)/share/doc/rootstock/changelog.Debian.gz
	install -D -m 0644 debian/rootstock.lintian-overrides $(DESTDIR)$(PREFIX)/share/lintian/overrides/rootstock

# The Debian package, made by cargo-deb from the binaries `static` put in
# target/static/ (the release profile strips them already).
deb: static man
	rm -f $(DEB)
	cargo deb --no-build --no-strip --locked -p rootstock --output $(DEB)

# The arm64 package: the same files, the arm64 programs (the `arm64` variant
# in Cargo.toml), built on any host.
deb-arm64: static-arm64 man
	rm -f $(DEB_ARM64)
	cargo deb --no-build --no-strip --locked -p rootstock --target $(ARM64_TARGET) --variant arm64 \
	  --output $(DEB_ARM64)

# lintian finds no errors (in either package); the arm64 package holds the
# same files as the amd64 one, its programs built for aarch64;
# `make install` installs exactly the package's files;
# debian/changelog names this version; the synopsis is one line;
# debian/copyright names exactly the crates linked into the binaries.
deb-check: deb deb-arm64
	lintian --fail-on error $(DEB) $(DEB_ARM64)
	dpkg-deb -c $(DEB) | awk '{ print $$1, $$6 }' | sort >target/deb-files-amd64
	dpkg-deb -c $(DEB_ARM64) | awk '{ print $$1, $$6 }' | sort | diff -u target/deb-files-amd64 -
	[ "$$(dpkg-deb -f $(DEB_ARM64) Architecture)" = arm64 ]
	rm -rf target/deb-arm64 && dpkg-deb -x $(DEB_ARM64) target/deb-arm64
	for p in usr/bin/rootstock usr/lib/rootstock/rootstock-boot; do \
	  [ "$$(od -An -tu1 -j18 -N2 target/deb-arm64/$$p | awk '{ print $$1 + 256 * $$2 }')" = 183 ] \
	    || { echo "$(DEB_ARM64): $$p is not an aarch64 program"; exit 1; }; done
	rm -rf target/install-check && $(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/target/install-check >/dev/null
	dpkg-deb -c $(DEB) | awk '{ sub("/$$", "", $$6); print $$1, $$6 }' | sort >target/deb-files
	cd target/install-check && find . -mindepth 1 -printf '%M %p\n' | sort >../install-files
	diff -u target/deb-files target/install-files
	head -1 debian/changelog | grep -qF 'rootstock ($(VERSION)-1)' \
	  || { echo "debian/changelog: the first entry is not $(VERSION)-1"; exit 1; }
	desc=$$(sed -n '/^\[package\]/,/^\[/s/^description = "\(.*\)"/\1/p' Cargo.toml); \
	  [ "$$(dpkg-deb -f $(DEB) Description | head -1)" = "$$desc" ] \
	  || { echo "Cargo.toml: description (the synopsis) is over 79 characters, cargo-deb wrapped it"; exit 1; }
	cargo tree --locked -e normal,no-proc-macro -p rootstock -p rootstock-boot --prefix none -f '{p}' \
	  | awk 'NF && !/^rootstock/ { print $$1 }' | sort -u >target/linked-crates
	grep -o 'vendor/[^/]*/\*' debian/copyright | sed 's,vendor/\(.*\)/\*,\1,' | grep -vx 'rust-std\|musl' \
	  | sort -u | diff -u --label debian/copyright --label 'linked crates' - target/linked-crates

clean:
	cargo clean

# Every fuzz target for FUZZ_SECONDS each (cargo-fuzz; see fuzz/README.md).
# The default runs on the stable toolchain (RUSTC_BOOTSTRAP for cargo-fuzz's
# -Z flags) without a sanitizer: coverage-guided all the same, what CI runs
# (`make test`: 5 s per target). FUZZ_FLAGS="+nightly" with FUZZ_SANITIZER=address
# adds AddressSanitizer (the long runs in fuzz/README.md).
FUZZ_SECONDS ?= 30
FUZZ_TARGETS = cmdline bls config marker module_index modinfo probe cpio mountinfo hostonly
FUZZ_FLAGS ?=
FUZZ_SANITIZER ?= none
fuzz-smoke:
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo $(FUZZ_FLAGS) fuzz build --sanitizer $(FUZZ_SANITIZER)
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  log=target/fuzz-$$t.log; \
	  RUSTC_BOOTSTRAP=1 cargo $(FUZZ_FLAGS) fuzz run --sanitizer $(FUZZ_SANITIZER) $$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 >$$log 2>&1 \
	    || { tail -n 40 $$log; echo "fuzz target $$t failed (fuzz/$$log)"; exit 1; }; \
	  echo "fuzz $$t: $$(sed -n 's/^stat::number_of_executed_units: *//p' $$log) executions in $(FUZZ_SECONDS) s"; \
	done
