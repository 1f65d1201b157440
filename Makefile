# SPDX-License-Identifier: MIT
# rsplice build.  `make deps` installs the Debian packages, `make` builds,
# `make check` runs the whole test suite (as root: it loads BPF and builds netns).

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
             python3 procps psmisc

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
