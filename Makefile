# rootstock: `make` builds the static release binary, `make check` runs every
# test tier that this machine can run, `make install DESTDIR=...` installs.

# musl where its target is installed, else glibc linked statically.
TARGET ?= $(shell rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl \
	&& echo x86_64-unknown-linux-musl || echo x86_64-unknown-linux-gnu)
STATIC_BIN := target/$(TARGET)/release/rootstock
PREFIX ?= /usr
DESTDIR ?=

.PHONY: all static check test-unit test-namespace install clean
all: static

static:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target $(TARGET)
	@ls -l $(STATIC_BIN)

check: static
	cargo fmt --check
	cargo clippy --all-targets --locked -- -D warnings
	ROOTSTOCK_STATIC_BIN=$(CURDIR)/$(STATIC_BIN) cargo test --locked

install: static
	install -D -m 0755 $(STATIC_BIN) $(DESTDIR)$(PREFIX)/bin/rootstock

clean:
	cargo clean
