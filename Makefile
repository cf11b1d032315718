# kevent: a unified kernel event queue, as a Rust module for a patched Linux
# 6.12. See README.md. Every target installs what it needs (scripts/setup.sh)
# and builds the kernel once into ~/.cache/kevent (override: KEVENT_CACHE).

.PHONY: all check check-debug run bench vm-run prog setup kernel module lib install clean help

PREFIX ?= /usr/local
DESTDIR ?=

all: help

help:
	@echo "make check    build everything, boot the VM, run all tests; prints 'N passed, N failed'"
	@echo "make check-debug   the same on a debug kernel (lockdep, KASAN, kmemleak, atomic-sleep checks)"
	@echo "make run      build everything, boot the VM, run the examples and the benchmarks"
	@echo "make bench    only the benchmarks (kevent vs epoll vs io_uring); tables and plots in out/results/"
	@echo "make vm-run CMD='./prog' FILES='prog'   run your own command in the VM"
	@echo "make prog SRC=prog.c                    compile your own program for the VM"
	@echo "make lib      build libkevent (out/lib: static, shared, pkg-config)"
	@echo "make install PREFIX=/usr/local DESTDIR=   headers, libkevent, kevent.pc, man pages"
	@echo "make setup | kernel | module | clean"

check:
	@scripts/check.sh release

check-debug:
	@scripts/check.sh debug

run:
	@scripts/run.sh

bench:
	@scripts/run.sh bench

vm-run:
	@scripts/vm-run-user.sh "$(CMD)" "$(FILES)"

prog:
	@scripts/build-prog.sh "$(SRC)"

setup:
	@scripts/setup.sh

kernel: setup
	@scripts/build-kernel.sh >/dev/null

module: kernel
	@scripts/build-module.sh "$$(scripts/build-kernel.sh 2>/dev/null)"

lib:
	@scripts/build-lib.sh

install:
	@scripts/install.sh "$(PREFIX)" "$(DESTDIR)"

clean:
	rm -rf out
	find rust tests -name '*.o' -o -name '*.ko' -o -name '*.mod*' -o -name '.*.cmd' \
		-o -name '*.rmeta' -o -name 'modules.order' -o -name 'Module.symvers' | xargs rm -f
	rm -f Module.symvers modules.order
