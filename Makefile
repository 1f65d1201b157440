# SPDX-License-Identifier: MIT
# rsplice build.  `make deps` installs the Debian packages, `make` builds,
# `make check` runs the whole test suite (as root: it loads BPF and builds netns).

# `make SANITIZE=1 ...`: everything built with ASan + UBSan into its own
# directory (build/asan unless BUILD is given), apart from the normal build.
ifeq ($(SANITIZE),1)
BUILD     ?= build/asan
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
BUILD     ?= build
CC        ?= gcc
CLANG     ?= clang
BPFTOOL   ?= bpftool
VMLINUX_H ?= vmlinux/vmlinux.h
ARCH      := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

PKGS      := libbpf libelf libsodium inih libnl-3.0 libcap zlib
CFLAGS    ?= -O2 -g
CFLAGS    += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
             -Iinclude -Iuser -I$(BUILD) $(shell pkg-config --cflags $(PKGS))
LDLIBS    += $(shell pkg-config --libs $(PKGS))
BPF_CFLAGS := -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) \
              -I$(dir $(VMLINUX_H)) -Iinclude

DEB_PKGS  := build-essential clang llvm pkg-config bpftool libbpf-dev libelf-dev \
             zlib1g-dev libsodium-dev libinih-dev libnl-3-dev libnl-route-3-dev \
             libnl-idiag-3-dev libcap-dev iproute2 nftables iperf3 curl socat \
             python3 procps psmisc gnuplot-nox openssh-server openssh-client \
             nginx-light

# Binaries with a main() of their own; everything else in user/ is shared.
MAINS       := user/edge.c user/agent.c user/rsplice.c
CLI_SRCS    := $(wildcard user/cli_*.c)
COMMON_SRCS := $(filter-out $(MAINS) $(CLI_SRCS),$(wildcard user/*.c))
COMMON_OBJS := $(patsubst user/%.c,$(BUILD)/%.o,$(COMMON_SRCS))
CLI_OBJS    := $(patsubst user/%.c,$(BUILD)/%.o,$(CLI_SRCS))
BPF_SRCS    := $(wildcard bpf/*.bpf.c)
BPF_OBJS    := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS       := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
TEST_SRCS   := $(wildcard selftests/test_*.c)
TEST_BINS   := $(patsubst selftests/%.c,$(BUILD)/%,$(TEST_SRCS))
TOOL_SRCS   := $(wildcard tools/*.c)
TOOL_BINS   := $(patsubst tools/%.c,$(BUILD)/%,$(TOOL_SRCS))
BINS        := $(BUILD)/rsplice $(BUILD)/rsplice-edge $(BUILD)/rsplice-agent

.PHONY: all deps check test-unit clean vmlinux
all: $(BINS) $(TEST_BINS) $(TOOL_BINS)

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PKGS)

$(BUILD):
	mkdir -p $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c include/rsplice_bpf.h $(VMLINUX_H) | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	llvm-strip -g $@ 2>/dev/null || true

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

$(BUILD)/%.o: user/%.c $(wildcard user/*.h include/*.h) $(SKELS) | $(BUILD)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/rsplice-edge: $(BUILD)/edge.o $(COMMON_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/rsplice-agent: $(BUILD)/agent.o $(COMMON_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/rsplice: $(BUILD)/rsplice.o $(CLI_OBJS) $(COMMON_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/test_%: selftests/test_%.c $(COMMON_OBJS) $(wildcard selftests/*.h)
	$(CC) $(CFLAGS) -Iselftests $< $(COMMON_OBJS) -o $@ $(LDLIBS)

$(BUILD)/%: tools/%.c $(COMMON_SRCS) $(wildcard user/*.h include/*.h) $(SKELS) | $(BUILD)
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS) -lpthread

# Regenerate the checked-in vmlinux.h from the running kernel's BTF.
vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h

check: all
	bash selftests/run.sh

clean:
	rm -rf $(BUILD)

# ---------------------------------------------------------- operations (ops)
# json-c: the admin socket's answers (daemons) and their parsing (rsplice conns).
PKGS      += json-c
DEB_PKGS  += libjson-c-dev

# ------------------------------------------------------------------ sanitizers
# SAN_FLAGS (set by SANITIZE=1 at the top) go into compiling and linking.
CFLAGS    += $(SAN_FLAGS)
DEB_PKGS  += libclang-rt-14-dev

# `make check` also runs the unit tests, test_relay.sh and the splice-path e2e
# tests against an ASan/UBSan build in build/asan (see selftests/run.sh).
SAN_BUILD ?= build/asan
.PHONY: sanitize
sanitize:
	$(MAKE) --no-print-directory SANITIZE=1 BUILD=$(SAN_BUILD) all

# (run.sh builds it as a counted step, so a broken ASan build is a failed test
# in the `N passed, N failed` line, not a missing summary.)
ifneq ($(SANITIZE),1)
check: export RUN_SANITIZED ?= 1
check: export SAN_BUILD := $(SAN_BUILD)
endif

# -------------------------------------------------------------------- fuzzing
# libFuzzer targets fuzz/fuzz_*.c (clang, -fsanitize=fuzzer,address,undefined),
# linked with the user/ sources compiled for fuzzing into $(FUZZ_BUILD)/obj.
#   make fuzz          run every target for FUZZ_SECONDS on a copy of its seed
#                      corpus fuzz/corpus/TARGET (fails on any crash)
#   make fuzz-regress  run every target once over every file of its corpus
#   make fuzz-build    only build them
FUZZ_CC      ?= clang-14
FUZZ_BUILD   ?= $(BUILD)/fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS  := -g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter \
                -Iinclude -Iuser -I$(BUILD) -Ifuzz $(shell pkg-config --cflags $(PKGS))
FUZZ_SRCS    := $(wildcard fuzz/fuzz_*.c)
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(FUZZ_SRCS))
FUZZ_BINS    := $(addprefix $(FUZZ_BUILD)/,$(FUZZ_TARGETS))
FUZZ_OBJS    := $(patsubst user/%.c,$(FUZZ_BUILD)/obj/%.o,$(COMMON_SRCS))

.PHONY: fuzz fuzz-build fuzz-regress
.SECONDARY: $(FUZZ_OBJS)
fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/obj/%.o: user/%.c $(wildcard user/*.h include/*.h) $(SKELS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer $< $(FUZZ_OBJS) -o $@ $(LDLIBS) -ldl

fuzz: fuzz-build
	bash fuzz/run.sh fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-regress: fuzz-build
	bash fuzz/run.sh regress $(FUZZ_BUILD) 0 $(FUZZ_TARGETS)

# ---- install / uninstall: programs, systemd units, man pages, completion ----
# DESTDIR stages the whole tree (for packages); PREFIX picks the hierarchy:
#   PREFIX=/usr/local (default)  a local install; units go to
#                                /usr/local/lib/systemd/system, which systemd reads
#   PREFIX=/usr                  a distribution's layout; units go to
#                                /lib/systemd/system, where Debian 12 packages put
#                                them (dh_installsystemd)
# UNITDIR= overrides that choice.  The programs are root tools: sbin.  The
# example config always goes to /etc/rsplice, where the units read
# /etc/rsplice/rsplice.conf; install never writes rsplice.conf itself.
# The units name /usr/local/sbin; install rewrites that to $(SBINDIR).
# man pages are linted by selftests/test_install.sh (groff, man -l, mandoc -Tlint)
DEB_PKGS    += groff-base man-db mandoc

PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
UNITDIR     ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
CONFDIR     ?= /etc/rsplice
INSTALL     ?= install
UNIT_FILES  := $(wildcard packaging/systemd/*.service)
MAN5_FILES  := $(wildcard man/*.5)
MAN8_FILES  := $(wildcard man/*.8)

.PHONY: install uninstall
install: $(BINS)
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(CONFDIR)
	$(INSTALL) -m 0755 $(BINS) $(DESTDIR)$(SBINDIR)/
	for u in $(UNIT_FILES); do \
		sed 's|/usr/local/sbin/|$(SBINDIR)/|g' $$u > $(DESTDIR)$(UNITDIR)/$${u##*/} && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done
	$(INSTALL) -m 0644 $(MAN5_FILES) $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 0644 $(MAN8_FILES) $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 0644 completion/rsplice.bash $(DESTDIR)$(BASHCOMPDIR)/rsplice
	ln -sf rsplice $(DESTDIR)$(BASHCOMPDIR)/rsplice-edge
	ln -sf rsplice $(DESTDIR)$(BASHCOMPDIR)/rsplice-agent
	$(INSTALL) -m 0644 packaging/rsplice.conf.example $(DESTDIR)$(CONFDIR)/rsplice.conf.example

# Leaves /etc/rsplice/rsplice.conf and the token alone.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(notdir $(BINS))) \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(UNIT_FILES))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5_FILES))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8_FILES))) \
		$(addprefix $(DESTDIR)$(BASHCOMPDIR)/,rsplice rsplice-edge rsplice-agent) \
		$(DESTDIR)$(CONFDIR)/rsplice.conf.example
	rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true
