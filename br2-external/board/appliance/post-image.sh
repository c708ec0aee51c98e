#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Buildroot post-image script (BR2_ROOTFS_POST_IMAGE_SCRIPT): $1 is BINARIES_DIR.
# Makes what `make -C images` makes, from Buildroot's kernel and initramfs:
#   appliance.iso     hybrid ISO: CD or disk, BIOS or UEFI
#   appliance.qcow2   the same plus partition 3, the APPLIANCE-CONFIG filesystem
# The layout is made by images/mkiso.sh itself, given Buildroot's GRUB; the
# kernel command line and the config partition size come from images/Makefile
# (CMDLINE, CONFIG_MIB; CMDLINE_EXTRA and CONFIG_MIB in the environment apply).
# Tools: Buildroot's host-grub2 (grub-mkimage and the GRUB build directories),
# host-xorriso, host-dosfstools, host-mtools, host-e2fsprogs; qemu-img from
# PATH (the build machine's qemu-utils, or BR2_PACKAGE_HOST_QEMU).
set -euo pipefail
export LC_ALL=C

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }

binaries=${1:?usage: $prog BINARIES_DIR}
# The external tree is br2-external/ of the project's repository, not a tree of its
# own: its parent is the repository, whose images/ (mkiso.sh, Makefile, grub/) this
# script uses as they are, so both builds share one image layout.
repo=$(cd "${BR2_EXTERNAL_APPLIANCE_PATH:?run by Buildroot with the APPLIANCE external tree}/.." && pwd)
mkiso=$repo/images/mkiso.sh
[ -x "$mkiso" ] || die "$mkiso missing: BR2_EXTERNAL must be the br2-external/ directory of the appliance repository"
: "${HOST_DIR:?}" "${BUILD_DIR:?}"

kernel=$binaries/bzImage
initrd=$binaries/rootfs.cpio.zst
[ -f "$kernel" ] || die "$kernel missing (BR2_LINUX_KERNEL_BZIMAGE)"
[ -f "$initrd" ] || die "$initrd missing (BR2_TARGET_ROOTFS_CPIO_ZSTD)"

# The GRUB that Buildroot built for each platform (boot/grub2/grub2.mk).
grub_dir() {
	local dirs
	dirs=$(find "$BUILD_DIR" -mindepth 3 -maxdepth 3 -path "*/grub2-*/build-$1/grub-core" -type d)
	[ "$(printf '%s\n' "$dirs" | grep -c .)" = 1 ] ||
		die "expected one GRUB build for $1 under $BUILD_DIR, found: ${dirs:-none}" \
			"(BR2_TARGET_GRUB2_I386_PC and BR2_TARGET_GRUB2_X86_64_EFI)"
	echo "$dirs"
}
grub_pc=$(grub_dir i386-pc)
grub_efi=$(grub_dir x86_64-efi)

# Settings shared with images/: read from its Makefile, without Buildroot's make
# variables (MAKEFLAGS) leaking into that make.
# shellcheck disable=SC2016 # $(...) is make syntax, expanded by that make
settings=$(env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u MAKEOVERRIDES \
	make -s --no-print-directory -C "$repo/images" KVER=unused \
	--eval 'appliance-settings: ; @printf "%s\n%s\n" "$(strip $(CMDLINE))" "$(CONFIG_MIB)"' \
	appliance-settings) || die "cannot read CMDLINE and CONFIG_MIB from $repo/images/Makefile"
cmdline=$(printf '%s\n' "$settings" | sed -n 1p)
config_mib=$(printf '%s\n' "$settings" | sed -n 2p)
if [ -z "$cmdline" ] || [ -z "$config_mib" ]; then
	die "images/Makefile gave no CMDLINE or CONFIG_MIB"
fi

# Dates: BR2_REPRODUCIBLE exports SOURCE_DATE_EPOCH; else the repository's last commit.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH

work=$BUILD_DIR/appliance-images
iso=$binaries/appliance.iso
disk=$work/appliance-disk.img
"$mkiso" --kernel "$kernel" --initrd "$initrd" --cmdline "$cmdline" \
	--iso "$iso" --disk "$disk" --config-mib "$config_mib" --work "$work/tree" \
	--grub-pc "$grub_pc" --grub-efi "$grub_efi" --grub-mkimage "$HOST_DIR/bin/grub-mkimage"

command -v qemu-img >/dev/null ||
	die "qemu-img not found: install qemu-utils or enable BR2_PACKAGE_HOST_QEMU ($iso is done)"
qcow2=$binaries/appliance.qcow2
qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zlib "$disk" "$qcow2.tmp"
mv -f "$qcow2.tmp" "$qcow2"
rm -f "$disk"

for f in "$kernel" "$initrd" "$iso" "$qcow2"; do
	printf '%s: %-45s %6d KiB\n' "$prog" "$f" $(( $(stat -c %s "$f") / 1024 ))
done
