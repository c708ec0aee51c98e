#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# install-deps.sh: install what building and testing the appliance needs on Debian 12,
# skipping everything already present. Used by ./run.sh, tests/run-all.sh and .ci/run.
#
#   scripts/install-deps.sh          install what is missing (needs root for apt)
#   scripts/install-deps.sh --check  only report what is missing; exit 1 if anything is
#
# Rust (cargo, rustc >= 1.82, rustfmt, clippy) must already be installed: Debian 12's own
# cargo is too old, and this script does not download toolchains.
set -euo pipefail
export LC_ALL=C

check_only=0
[ "${1:-}" = --check ] && check_only=1

say() { echo "install-deps: $*" >&2; }

# Debian packages and the program (or file) that shows each one is usable.
packages=(
	"qemu-system-x86:qemu-system-x86_64"
	"ovmf:/usr/share/OVMF"
	"xorriso:xorriso"
	"grub-pc-bin:/usr/lib/grub/i386-pc"
	"grub-efi-amd64-bin:/usr/lib/grub/x86_64-efi"
	"mtools:mcopy"
	"dosfstools:mkfs.vfat"
	"e2fsprogs:mkfs.ext4"
	"cpio:cpio"
	"zstd:zstd"
	"kmod:modinfo"
	"fio:fio"
	"dmsetup:dmsetup"
	"busybox:busybox"
	"curl:curl"
	"make:make"
	"gcc:gcc"
	"perl:perl"
	"linux-image-amd64:/boot/vmlinuz-*-amd64"
	"linux-headers-amd64:/usr/src/linux-headers-*-amd64"
	"linux-source-6.1:/usr/src/linux-source-*.tar.xz"
	# The web UI test (tests/tests/webui.rs): headless browser, its driver, schemathesis.
	"chromium:chromium"
	"nodejs:node"
	"npm:npm"
	"python3-venv:/usr/lib/python3*/ensurepip"
	# The NBD export test (tests/tests/nbd.rs): real NBD clients and certificates.
	"libnbd-bin:nbdcopy"
	"nbd-client:nbd-client"
	"openssl:openssl"
	"gnutls-bin:certtool"
	# The NFS target test (tests/tests/webui.rs): a user-space NFSv4 server.
	"nfs-ganesha:ganesha.nfsd"
	"nfs-ganesha-vfs:/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so"
)

# present WHAT: a program on PATH, or a path (glob allowed) that exists.
present() {
	case $1 in
	/*) compgen -G "$1" > /dev/null ;;
	*) command -v "$1" > /dev/null 2>&1 ;;
	esac
}

missing=()
for entry in "${packages[@]}"; do
	pkg=${entry%%:*} probe=${entry#*:}
	present "$probe" || missing+=("$pkg")
done
qemu_img_ok() { qemu-img --version > /dev/null 2>&1; }
qemu_img_ok || missing+=("qemu-utils")

rust_missing=()
for tool in cargo rustc; do
	command -v "$tool" > /dev/null 2>&1 || rust_missing+=("$tool")
done
if command -v cargo > /dev/null 2>&1; then
	cargo fmt --version > /dev/null 2>&1 || rust_missing+=("rustfmt")
	cargo clippy --version > /dev/null 2>&1 || rust_missing+=("clippy")
fi

# Garage 2.5.0, the real S3 server the s3target tests start on 127.0.0.1 (about 11 minutes
# to build; skipped when the installed one reports 2.5.0).
garage_bin() {
	if command -v garage > /dev/null 2>&1; then echo garage; else echo "$HOME/.cargo/bin/garage"; fi
}
garage_ok() { "$(garage_bin)" --version 2> /dev/null | grep -q '2\.5\.0'; }
install_garage() {
	garage_ok && return 0
	say "installing Garage 2.5.0 with cargo (about 11 minutes)"
	cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,sqlite
}

if [ ${#missing[@]} -eq 0 ] && [ ${#rust_missing[@]} -eq 0 ]; then
	if garage_ok; then
		say "everything is installed"
		exit 0
	fi
	if [ $check_only = 1 ]; then
		say "missing: garage 2.5.0 (cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,sqlite)"
		exit 1
	fi
	install_garage
	say "done"
	exit 0
fi
if [ ${#rust_missing[@]} -gt 0 ]; then
	say "missing Rust tools: ${rust_missing[*]} (install a Rust toolchain >= 1.82 with rustfmt and clippy)"
	exit 1
fi
if [ $check_only = 1 ]; then
	say "missing Debian packages: ${missing[*]}"
	garage_ok || say "missing: garage 2.5.0"
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	say "missing Debian packages: ${missing[*]}; run this script as root"
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
say "installing: ${missing[*]}"
apt-get update -q
# qemu-system-x86 first: with backports enabled it can pull a qemu-system-common that
# leaves the installed qemu-utils behind, so qemu-utils is installed again after it.
apt_install() { apt-get install -y -q --no-install-recommends "$@"; }
others=()
for pkg in "${missing[@]}"; do
	[ "$pkg" = qemu-utils ] || others+=("$pkg")
done
[ ${#others[@]} -eq 0 ] || apt_install "${others[@]}"
apt_install qemu-utils
if ! qemu_img_ok; then
	say "qemu-img does not run after installing qemu-utils:"
	qemu-img --version || true
	exit 1
fi
say "qemu-img: $(qemu-img --version | head -n 1)"
install_garage
say "done"
