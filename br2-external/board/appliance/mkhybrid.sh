#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# mkhybrid.sh: the appliance's hybrid BIOS+UEFI ISO and raw disk image, from a
# kernel, an initramfs and GRUB module directories given by path, so Buildroot's
# own GRUB build can be used (post-image.sh). The layout is the one of
# images/mkiso.sh, and with the same inputs and GRUB the output is the same:
#   - BIOS: El Torito no-emulation GRUB core for CD boot, GRUB's boot_hybrid MBR
#     for disk boot; UEFI: a FAT EFI system partition appended as MBR partition 2;
#   - the GRUB menu and the embedded search config are images/grub/grub.cfg and
#     images/grub/early.cfg (placeholders @CMDLINE@ and @UUID@);
#   - --disk adds MBR partition 3: an ext4 filesystem labelled APPLIANCE-CONFIG.
#
#   mkhybrid.sh --kernel BZIMAGE --initrd INITRD --cmdline "ARGS" --iso OUT.iso
#               --grub-pc DIR --grub-efi DIR --grub-cfg DIR
#               [--grub-mkimage PROG] [--disk OUT.img --config-mib N] [--work DIR]
#
#   --grub-pc DIR    i386-pc modules with boot_hybrid.img and cdboot.img
#   --grub-efi DIR   x86_64-efi modules
#   --grub-cfg DIR   holds grub.cfg and early.cfg (images/grub)
#
# Tools from PATH: xorriso, mkfs.vfat, mmd, mcopy, mkfs.ext4 (for --disk).
# Dates come from SOURCE_DATE_EPOCH (default 0); the same inputs give the same bytes.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }

kernel='' initrd='' cmdline='' iso='' disk='' config_mib=16 work=''
grub_pc='' grub_efi='' grub_cfg='' mkimage=grub-mkimage
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
	--grub-cfg) grub_cfg=${2:?}; shift 2 ;;
	--grub-mkimage) mkimage=${2:?}; shift 2 ;;
	-h|--help) sed -n '4,24s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done
[ -f "$kernel" ] || die "--kernel: no such file: $kernel"
[ -f "$initrd" ] || die "--initrd: no such file: $initrd"
[ -n "$iso" ] || die "--iso is required"
for f in "$grub_pc/boot_hybrid.img" "$grub_pc/cdboot.img" "$grub_pc/moddep.lst" \
	"$grub_efi/moddep.lst" "$grub_cfg/grub.cfg" "$grub_cfg/early.cfg"; do
	[ -f "$f" ] || die "missing $f (check --grub-pc, --grub-efi, --grub-cfg)"
done
tools="$mkimage xorriso mkfs.vfat mmd mcopy"
[ -z "$disk" ] || tools="$tools mkfs.ext4"
for tool in $tools; do
	command -v "$tool" >/dev/null || die "$tool not found on PATH"
done
case $cmdline in
*\"*|*\\*|*$'\n'*) die "--cmdline must not contain quotes, backslashes or newlines" ;;
esac

epoch=${SOURCE_DATE_EPOCH:-0}
export SOURCE_DATE_EPOCH=$epoch
# GRUB reads an ISO 9660 filesystem's modification date as its UUID.
isodate=$(date -u -d "@$epoch" +%Y%m%d%H%M%S00)
uuid=$(date -u -d "@$epoch" +%Y-%m-%d-%H-%M-%S-00)

if [ -n "$work" ]; then
	rm -rf "$work"
	mkdir -p "$work"
	tmp=
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/mkhybrid.XXXXXX")
	tmp=$work
fi
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT
tree=$work/tree
mkdir -p "$tree/boot/grub"

# The menu names the kernel and initramfs paths; put the files there.
kpath=$(awk '$1 == "linux" { print $2; exit }' "$grub_cfg/grub.cfg")
ipath=$(awk '$1 == "initrd" { print $2; exit }' "$grub_cfg/grub.cfg")
case $kpath:$ipath in
/boot/?*:/boot/?*) ;;
*) die "$grub_cfg/grub.cfg: expected 'linux /boot/...' and 'initrd /boot/...' lines" ;;
esac

# Embedded configs have no comment syntax; the menu gets the command line.
sed -e '/^[[:space:]]*#/d' -e "s|@UUID@|$uuid|g" "$grub_cfg/early.cfg" > "$work/early.cfg"
sed -e "s|@CMDLINE@|$cmdline|" "$grub_cfg/grub.cfg" > "$tree/boot/grub/grub.cfg"

# Both cores carry every module they use; nothing is loaded from the medium.
common="iso9660 part_msdos part_gpt search search_fs_uuid configfile normal echo test
	linux boot serial terminal"
# shellcheck disable=SC2086 # word splitting of the module lists is intended
"$mkimage" -d "$grub_pc" -O i386-pc-eltorito -p /boot/grub -c "$work/early.cfg" \
	-o "$tree/boot/grub/bios.img" $common biosdisk
# shellcheck disable=SC2086
"$mkimage" -d "$grub_efi" -O x86_64-efi -p /boot/grub -c "$work/early.cfg" \
	-o "$work/BOOTX64.EFI" $common fat efi_gop

# The EFI system partition: FAT, sized to the EFI core plus 256 KiB, in 64 KiB steps.
efi_kib=$(( ($(stat -c %s "$work/BOOTX64.EFI") / 1024 + 256 + 63) / 64 * 64 ))
mkfs.vfat --invariant -i 41505050 -n ESP -C "$work/efi.img" "$efi_kib" >/dev/null
touch -d "@$epoch" "$work/BOOTX64.EFI"
mmd -i "$work/efi.img" ::/EFI ::/EFI/BOOT
mcopy -m -i "$work/efi.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

cp "$kernel" "$tree$kpath"
cp "$initrd" "$tree$ipath"
chmod 0644 "$tree$kpath" "$tree$ipath" "$tree/boot/grub/"*
touch -d "@$epoch" "$work/efi.img"
find "$tree" -exec touch -h -d "@$epoch" {} +

# xorriso_image OUT [extra mkisofs options]: ISO 9660 + El Torito + MBR partitions.
xorriso_image() {
	local out=$1
	shift
	if ! xorriso -as mkisofs \
		-o "$out" -V APPLIANCE -r -J -joliet-long \
		--modification-date="$isodate" \
		--grub2-mbr "$grub_pc/boot_hybrid.img" \
		-partition_offset 16 -partition_cyl_align all \
		-append_partition 2 0xef "$work/efi.img" \
		"$@" \
		-c boot/boot.catalog \
		-b boot/grub/bios.img -no-emul-boot -boot-load-size 4 -boot-info-table \
		--grub2-boot-info \
		-eltorito-alt-boot -e --interval:appended_partition_2:all:: -no-emul-boot \
		"$tree" 2> "$work/xorriso.log"; then
		cat "$work/xorriso.log" >&2
		die "xorriso failed"
	fi
}
mkdir -p "$(dirname "$iso")"
xorriso_image "$iso.tmp"
mv -f "$iso.tmp" "$iso"

if [ -n "$disk" ]; then
	config=$work/config.ext4
	# UUID and hash seed derived from the epoch: fixed for one release.
	seed=$(printf 'appliance-config-%s' "$epoch" | md5sum |
		sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
	truncate -s "${config_mib}M" "$config"
	E2FSPROGS_FAKE_TIME=$epoch mkfs.ext4 -q -L APPLIANCE-CONFIG -U "$seed" \
		-E "hash_seed=$seed,root_owner=0:0,lazy_itable_init=0,nodiscard" \
		-b 4096 -N 256 "$config"
	mkdir -p "$(dirname "$disk")"
	xorriso_image "$disk.tmp" -append_partition 3 0x83 "$config"
	mv -f "$disk.tmp" "$disk"
fi
