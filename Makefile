# Tandem — the two commands a newcomer needs are `make demo` and `make test`.
PREFIX ?= /usr/local
SWIFT ?= swift

.PHONY: all build release demo test bench fuzz install prerequisites clean

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

# Coverage-guided fuzzing of the C ABI against a real PostgreSQL (libFuzzer);
# FUZZ_SECONDS=600 by default. make test runs the same for 30 s.
FUZZ_SECONDS ?= 600
fuzz: prerequisites
	@scripts/fuzz $(FUZZ_SECONDS)

bench: prerequisites
	@bench/run
	@bench/tabs

# The version lives in include/tandem.h; the library is installed as
# libTandem.so.X.Y.Z with the libTandem.so.X (SONAME) and libTandem.so links.
# The release build carries the Swift runtime inside (README "Shipping the
# library"); symbols not needed to load them are stripped from the installed copies.
VERSION := $(shell sed -n 's/^\#define TANDEM_VERSION "\(.*\)"/\1/p' include/tandem.h)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
STRIP ?= strip

install: release
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/tandem.h $(DESTDIR)$(PREFIX)/include/tandem.h
	install -m 755 .build/release/libTandem.so $(DESTDIR)$(PREFIX)/lib/libTandem.so.$(VERSION)
	$(STRIP) --strip-unneeded $(DESTDIR)$(PREFIX)/lib/libTandem.so.$(VERSION)
	ln -sf libTandem.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libTandem.so.$(MAJOR)
	ln -sf libTandem.so.$(MAJOR) $(DESTDIR)$(PREFIX)/lib/libTandem.so
	install -m 755 .build/release/tandem $(DESTDIR)$(PREFIX)/bin/tandem
	$(STRIP) --strip-unneeded $(DESTDIR)$(PREFIX)/bin/tandem
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|' \
		tandem.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tandem.pc
	@echo "installed to $(PREFIX): cc host.c \$$(pkg-config --cflags --libs tandem)"

# The Python package with libTandem inside (the release build: the Swift
# runtime is linked in), as dist/tandem_crm_sync-VERSION-py3-none-linux_ARCH.whl.
wheel: release
	@scripts/wheel

clean:
	rm -rf .build
