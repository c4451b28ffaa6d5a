# Builds slitter with cargo and installs it for C programs.
#
#   make                  cargo build --release, then add libslitter.so.0
#                         (the SONAME) and slitter-run to target/release
#   make install          build, then install into $(DESTDIR)$(PREFIX)
#   make uninstall        remove what `make install` installed
#
# Variables: PREFIX (default /usr/local), DESTDIR (staging root, default
# empty), bindir, libdir, includedir, mandir, pkgconfigdir (below PREFIX by
# default), CARGO (default cargo) and CARGO_TARGET_DIR (default target/ of
# this directory; a relative one is taken from this directory).
#
# Installed: bin/slitter-run, lib/libslitter.so.$(VERSION) with the links
# libslitter.so.$(MAJOR) (its SONAME) and libslitter.so, lib/libslitter.a,
# include/slitter.h, lib/pkgconfig/slitter.pc and share/man/man7/slitter.7.

PREFIX ?= /usr/local
DESTDIR ?=
bindir ?= $(PREFIX)/bin
libdir ?= $(PREFIX)/lib
includedir ?= $(PREFIX)/include
mandir ?= $(PREFIX)/share/man
pkgconfigdir ?= $(libdir)/pkgconfig
CARGO ?= cargo

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
TARGET_DIR := $(abspath $(ROOT)/$(or $(CARGO_TARGET_DIR),target))
ifneq ($(filter /%,$(CARGO_TARGET_DIR)),)
TARGET_DIR := $(CARGO_TARGET_DIR)
endif
RELEASE := $(TARGET_DIR)/release

# The package version, from Cargo.toml, and its major part (the SONAME's).
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' $(ROOT)/Cargo.toml | head -n 1)
MAJOR := $(firstword $(subst ., ,$(VERSION)))
ifeq ($(MAJOR),)
$(error cannot read the version from $(ROOT)/Cargo.toml)
endif

# What a static link of libslitter.a needs besides it: the libraries that
# `cargo rustc --release -- --print native-static-libs` lists (less -lc).
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl

.PHONY: all install uninstall

all:
	CARGO_TARGET_DIR='$(TARGET_DIR)' $(CARGO) build --release --manifest-path '$(ROOT)/Cargo.toml'
	ln -sf libslitter.so '$(RELEASE)/libslitter.so.$(MAJOR)'
	install -m 755 '$(ROOT)/c/slitter-run' '$(RELEASE)/slitter-run'

install: all
	install -d '$(DESTDIR)$(bindir)' '$(DESTDIR)$(libdir)' '$(DESTDIR)$(includedir)' \
		'$(DESTDIR)$(pkgconfigdir)' '$(DESTDIR)$(mandir)/man7'
	install -m 755 '$(RELEASE)/libslitter.so' '$(DESTDIR)$(libdir)/libslitter.so.$(VERSION)'
	ln -sf 'libslitter.so.$(VERSION)' '$(DESTDIR)$(libdir)/libslitter.so.$(MAJOR)'
	ln -sf 'libslitter.so.$(MAJOR)' '$(DESTDIR)$(libdir)/libslitter.so'
	install -m 644 '$(RELEASE)/libslitter.a' '$(DESTDIR)$(libdir)/libslitter.a'
	install -m 644 '$(ROOT)/include/slitter.h' '$(DESTDIR)$(includedir)/slitter.h'
	install -m 644 '$(ROOT)/docs/slitter.7' '$(DESTDIR)$(mandir)/man7/slitter.7'
	install -m 755 '$(ROOT)/c/slitter-run' '$(DESTDIR)$(bindir)/slitter-run'
	printf '%s\n' \
		'prefix=$(PREFIX)' \
		'libdir=$(libdir)' \
		'includedir=$(includedir)' \
		'' \
		'Name: slitter' \
		'Description: slab allocator with type-stable class memory, and a malloc replacement' \
		'Version: $(VERSION)' \
		'Libs: -L$${libdir} -lslitter' \
		'Libs.private: $(STATIC_LIBS)' \
		'Cflags: -I$${includedir}' \
		>'$(DESTDIR)$(pkgconfigdir)/slitter.pc'

uninstall:
	rm -f '$(DESTDIR)$(bindir)/slitter-run' \
		'$(DESTDIR)$(libdir)/libslitter.so.$(VERSION)' \
		'$(DESTDIR)$(libdir)/libslitter.so.$(MAJOR)' \
		'$(DESTDIR)$(libdir)/libslitter.so' \
		'$(DESTDIR)$(libdir)/libslitter.a' \
		'$(DESTDIR)$(includedir)/slitter.h' \
		'$(DESTDIR)$(pkgconfigdir)/slitter.pc' \
		'$(DESTDIR)$(mandir)/man7/slitter.7'
