# rootstock: `make` builds the static release binary, `make check` runs every
# test tier that this machine can run, `make install DESTDIR=...` installs.

# musl where its target is installed, else glibc linked statically.
TARGET ?= $(shell rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl \
	&& echo x86_64-unknown-linux-musl || echo x86_64-unknown-linux-gnu)
STATIC_BIN := target/$(TARGET)/release/rootstock
PREFIX ?= /usr
DESTDIR ?=

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
DRACUTDIR ?= /usr/lib/dracut/modules.d

.PHONY: all static check shellcheck install deb clean
all: static

static:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target $(TARGET)
	@ls -l $(STATIC_BIN)

check: static shellcheck
	cargo fmt --check
	cargo clippy --all-targets --locked -- -D warnings
	ROOTSTOCK_STATIC_BIN=$(CURDIR)/$(STATIC_BIN) cargo test --locked

# The dracut module's scripts: module-setup.sh is sourced by dracut (bash),
# the pre-pivot hook by dracut's shell init (sh).
shellcheck:
	shellcheck -s bash dracut-module/98rootstock/module-setup.sh
	shellcheck dracut-module/98rootstock/rootstock-pre-pivot.sh

install: static
	install -D -m 0755 $(STATIC_BIN) $(DESTDIR)$(PREFIX)/bin/rootstock
	install -d $(DESTDIR)$(DRACUTDIR)/98rootstock
	install -m 0755 dracut-module/98rootstock/*.sh $(DESTDIR)$(DRACUTDIR)/98rootstock/
	install -m 0644 dracut-module/98rootstock/*.service $(DESTDIR)$(DRACUTDIR)/98rootstock/

# A Debian package of the above: target/rootstock_VERSION_amd64.deb
deb: static
	rm -rf target/deb && $(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/target/deb
	install -d target/deb/DEBIAN
	printf '%s\n' 'Package: rootstock' 'Version: $(VERSION)' 'Architecture: amd64' \
	  'Maintainer: rootstock developers <rootstock@localhost>' 'Section: admin' 'Priority: optional' \
	  'Recommends: dracut' 'Description: boot OSTree deployments, with fallback, from the initramfs' \
	  ' A static binary that lays out an OSTree deployment at boot (dracut module included).' \
	  >target/deb/DEBIAN/control
	dpkg-deb --root-owner-group --build target/deb target/rootstock_$(VERSION)_amd64.deb

clean:
	cargo clean
