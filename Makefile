# Tandem — the two commands a newcomer needs are `make demo` and `make test`.
PREFIX ?= /usr/local
SWIFT ?= swift

.PHONY: all build release demo test bench bench-peers install prerequisites clean

all: build

prerequisites:
	@scripts/prerequisites

build: prerequisites
	$(SWIFT) build

release: prerequisites
	$(SWIFT) build -c release

# The demo on the reference apps: a throwaway PostgreSQL cluster unless
# TANDEM_DATABASE_URL names a database. DEMO_ARGS=--follow keeps it running.
demo: build
	@scripts/demo $(DEMO_ARGS)

# Every test against a real PostgreSQL (a throwaway cluster unless
# TANDEM_TEST_DATABASE_URL names a server): Swift, C ABI, Python.
test: prerequisites
	@scripts/test

bench: prerequisites
	@bench/run
	@bench/tabs

# Tandem beside Bucardo (installed from Debian's packages when missing; needs root) on the same
# rows in one throwaway cluster; writes bench/PEERS.md. PEERS_SCALE=small for a smoke test.
bench-peers: prerequisites
	@bench/peers

install: release
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/tandem.h $(DESTDIR)$(PREFIX)/include/tandem.h
	install -m 755 .build/release/libTandem.so $(DESTDIR)$(PREFIX)/lib/libTandem.so
	install -m 755 .build/release/tandem $(DESTDIR)$(PREFIX)/bin/tandem
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e "s|@VERSION@|$$(sed -n 's/^#define TANDEM_VERSION \"\(.*\)\"/\1/p' include/tandem.h)|" \
		tandem.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tandem.pc
	@echo "installed to $(PREFIX): cc host.c \$$(pkg-config --cflags --libs tandem)"

clean:
	rm -rf .build
