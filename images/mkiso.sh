#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# mkiso.sh: assemble the appliance's hybrid boot image from a kernel and an initramfs.
#
#   mkiso.sh --kernel VMLINUZ --initrd INITRD --cmdline "ARGS" --iso OUT.iso
#            [--disk OUT.img --config-mib N] [--work DIR]
#            [--grub-pc DIR] [--grub-efi DIR] [--grub-mkimage PROG]
#
# The ISO boots from CD-ROM and, written to a disk, from that disk, under BIOS and UEFI:
#   - BIOS: El Torito no-emulation GRUB core (i386-pc-eltorito) for CD boot, and the
#     boot_hybrid MBR pointing at the same core for disk boot;
#   - UEFI: an EFI system partition (FAT, \EFI\BOOT\BOOTX64.EFI), appended after the
#     ISO 9660 filesystem as MBR partition 2 (type 0xef) and named by the El Torito
#     alternative boot entry.
# The partition table is plain MBR: 1 = the ISO 9660 filesystem, 2 = the ESP,
# 3 = the config filesystem (disk image only).
# Both GRUB cores carry every module they need (nothing is loaded from the ISO) and an
# embedded config that finds the ISO by its UUID, then reads /boot/grub/grub.cfg: one
# entry, one second of timeout, on the serial port and the screen.
#
# --disk also writes a raw disk image: the same layout plus partition 3, a --config-mib
# MiB ext4 filesystem labelled APPLIANCE-CONFIG (settings that persist across boots).
#
# GRUB comes from Debian's packages unless named: --grub-pc DIR holds the i386-pc
# modules and boot_hybrid.img (default /usr/lib/grub/i386-pc), --grub-efi DIR the
# x86_64-efi modules (default /usr/lib/grub/x86_64-efi), --grub-mkimage PROG builds the
# cores (default grub-mkimage from PATH). Buildroot's post-image.sh names its own build.
#
# Reproducible: every date comes from SOURCE_DATE_EPOCH (default 0); the FAT and ext4
# images use fixed serials/UUIDs; the same inputs give byte-identical outputs.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }

kernel='' initrd='' cmdline='' iso='' disk='' config_mib=16 work=''
grub_pc=/usr/lib/grub/i386-pc grub_efi=/usr/lib/grub/x86_64-efi mkimage=grub-mkimage
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernel=${2:?}; shift 2 ;;
	--initrd) initrd=${2:?}; shift 2 ;;
	--cmdline) cmdline=${2?}; shift 2 ;;
	--iso) iso=${2:?}; shift 2 ;;
	--disk) disk=${2:?}; shift 2 ;;
	--config-mib) config_mib=${2:?}; shift 2 ;;
	--work) work=${2:?}; shift 2 ;;
	--grub-pc) grub_pc=${2:?}; shift 2 ;;
	--grub-efi) grub_efi=${2:?}; shift 2 ;;
	--grub-mkimage) mkimage=${2:?}; shift 2 ;;
	-h|--help) sed -n '4,28s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done
[ -f "$kernel" ] || die "--kernel: no such file: $kernel"
[ -f "$initrd" ] || die "--initrd: no such file: $initrd"
[ -n "$iso" ] || die "--iso is required"
tools=("$mkimage" xorriso mkfs.vfat mmd mcopy)
[ -z "$disk" ] || tools+=(mkfs.ext4)
for tool in "${tools[@]}"; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install grub-pc-bin grub-efi-amd64-bin xorriso dosfstools mtools e2fsprogs)"
done
[ -f "$grub_pc/boot_hybrid.img" ] || die "$grub_pc/boot_hybrid.img missing (apt-get install grub-pc-bin, or --grub-pc DIR)"
[ -f "$grub_efi/moddep.lst" ] || die "$grub_efi/moddep.lst missing (apt-get install grub-efi-amd64-bin, or --grub-efi DIR)"

here=$(cd "$(dirname "$0")" && pwd)
epoch=${SOURCE_DATE_EPOCH:-0}
export SOURCE_DATE_EPOCH=$epoch
# The ISO's modification date is its UUID as GRUB sees it: YYYY-MM-DD-hh-mm-ss-cc.
isodate=$(date -u -d "@$epoch" +%Y%m%d%H%M%S00)
uuid=$(date -u -d "@$epoch" +%Y-%m-%d-%H-%M-%S-00)
volid=APPLIANCE

if [ -n "$work" ]; then
	rm -rf "$work"
	mkdir -p "$work"
	cleanup=
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/mkiso.XXXXXX")
	cleanup=$work
fi
trap '[ -z "$cleanup" ] || rm -rf "$cleanup"' EXIT
tree=$work/tree
mkdir -p "$tree/boot/grub"

# --- GRUB -----------------------------------------------------------------------------
# The embedded config's parser knows no comments: drop them.
sed -e '/^[[:space:]]*#/d' -e "s|@UUID@|$uuid|g" "$here/grub/early.cfg" > "$work/early.cfg"
# grub.cfg is GRUB script: keep the command line on one line, no quotes to escape.
case $cmdline in *'"'*|*\\*|*$'\n'*) die "--cmdline must not contain quotes, backslashes or newlines" ;; esac
sed -e "s|@CMDLINE@|$cmdline|" "$here/grub/grub.cfg" > "$tree/boot/grub/grub.cfg"

# Modules both cores embed; each platform adds its disk access and video.
common=(iso9660 part_msdos part_gpt search search_fs_uuid configfile normal echo test
	linux boot serial terminal)
"$mkimage" -d "$grub_pc" -O i386-pc-eltorito -p /boot/grub -c "$work/early.cfg" \
	-o "$tree/boot/grub/bios.img" "${common[@]}" biosdisk
"$mkimage" -d "$grub_efi" -O x86_64-efi -p /boot/grub -c "$work/early.cfg" \
	-o "$work/BOOTX64.EFI" "${common[@]}" fat efi_gop
rm -f "$work/efi.img"

# The EFI system partition: a FAT image just big enough for the EFI core.
efi_kib=$(( ($(stat -c %s "$work/BOOTX64.EFI") / 1024 + 256 + 63) / 64 * 64 ))
mkfs.vfat --invariant -i 41505050 -n ESP -C "$work/efi.img" "$efi_kib" >/dev/null
touch -d "@$epoch" "$work/BOOTX64.EFI"
mmd -i "$work/efi.img" ::/EFI ::/EFI/BOOT
mcopy -m -i "$work/efi.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

# --- payload ------------------------------------------------------------------------
cp "$kernel" "$tree/boot/vmlinuz"
cp "$initrd" "$tree/boot/initrd.zst"
chmod 0644 "$tree/boot/vmlinuz" "$tree/boot/initrd.zst" "$tree/boot/grub/"*
touch -d "@$epoch" "$work/efi.img"
find "$tree" -exec touch -h -d "@$epoch" {} +

# --- ISO ----------------------------------------------------------------------------
# make_iso OUT [more xorriso -as mkisofs options...]: the one xorriso command.
make_iso() {
	local out=$1 log=$work/xorriso.log
	shift
	if ! xorriso -as mkisofs \
		-o "$out" -V "$volid" -r -J -joliet-long \
		--modification-date="$isodate" \
		--grub2-mbr "$grub_pc/boot_hybrid.img" \
		-partition_offset 16 -partition_cyl_align all \
		-append_partition 2 0xef "$work/efi.img" \
		"$@" \
		-c boot/boot.catalog \
		-b boot/grub/bios.img -no-emul-boot -boot-load-size 4 -boot-info-table \
		--grub2-boot-info \
		-eltorito-alt-boot -e --interval:appended_partition_2:all:: -no-emul-boot \
		"$tree" 2> "$log"; then
		cat "$log" >&2
		die "xorriso failed"
	fi
}
mkdir -p "$(dirname "$iso")"
make_iso "$iso.tmp"
mv -f "$iso.tmp" "$iso"

if [ -n "$disk" ]; then
	config=$work/config.ext4
	# Fixed UUID and hash seed derived from the epoch: reproducible, same per release.
	seed=$(printf 'appliance-config-%s' "$epoch" | md5sum | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
	rm -f "$config"
	truncate -s "${config_mib}M" "$config"
	E2FSPROGS_FAKE_TIME=$epoch mkfs.ext4 -q -L APPLIANCE-CONFIG -U "$seed" \
		-E "hash_seed=$seed,root_owner=0:0,lazy_itable_init=0,nodiscard" \
		-b 4096 -N 256 "$config"
	mkdir -p "$(dirname "$disk")"
	make_iso "$disk.tmp" -append_partition 3 0x83 "$config"
	mv -f "$disk.tmp" "$disk"
fi
