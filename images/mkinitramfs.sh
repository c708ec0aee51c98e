#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# mkinitramfs.sh: build a small, reproducible initramfs (cpio newc, zstd) whose /init is
# one program. Used by the appliance image (images/Makefile) and by the QEMU test
# harnesses (tests/).
#
#   mkinitramfs.sh --out OUT.cpio.zst --kver KVER --init BINARY --modules LISTFILE
#                  [--module-file KO]... [--file SRC:DEST]... [--bin PROGRAM]...
#
#   --init BINARY       becomes /init; its shared libraries and the ELF loader come along
#   --modules LISTFILE  module names, one a line, '#' comments; each module and all its
#                       dependencies (from /lib/modules/KVER/modules.dep) are copied to
#                       /lib/modules/KVER/<same path>; built-in modules are skipped
#   --module-file KO    an extra module (e.g. blksnap.ko) put in /lib/modules/KVER/extra/
#                       without debug info; its dependencies (modinfo depends=) are copied too
#   --file SRC:DEST     copy a host file to DEST in the image
#   --bin PROGRAM       copy a host program (path, or name on PATH) to /bin/<name>, with
#                       its shared libraries
#
# In the image, /lib/modules/KVER/ holds:
#   modules.dep   plain text, exactly the copied files (format of depmod's modules.dep)
#   modules.load  the names from LISTFILE that are modules, in list order: load these
#
# Reproducible: files are added in sorted order with mtime SOURCE_DATE_EPOCH (default 0),
# owner 0:0 and renumbered inodes, so the same inputs give a byte-identical image.
# Environment: SOURCE_DATE_EPOCH, ZSTD_LEVEL (default 19), MODULES_ROOT (default
# /lib/modules; a tree holding KVER/modules.dep, for tests).
set -euo pipefail
export LC_ALL=C
umask 022

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }
note() { echo "$prog: $*" >&2; }

out='' kver='' init='' modlist=''
module_files=() extra_files=() bins=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=${2:?}; shift 2 ;;
	--kver) kver=${2:?}; shift 2 ;;
	--init) init=${2:?}; shift 2 ;;
	--modules) modlist=${2:?}; shift 2 ;;
	--module-file) module_files+=("${2:?}"); shift 2 ;;
	--file) extra_files+=("${2:?}"); shift 2 ;;
	--bin) bins+=("${2:?}"); shift 2 ;;
	-h|--help) sed -n '4,30s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done
[ -n "$out" ] || die "--out is required"
[ -n "$kver" ] || die "--kver is required"
[ -n "$init" ] || die "--init is required"
[ -n "$modlist" ] || die "--modules is required"
[ -f "$init" ] || die "init program not found: $init"
[ -f "$modlist" ] || die "module list not found: $modlist"

moddir=${MODULES_ROOT:-/lib/modules}/$kver
[ -f "$moddir/modules.dep" ] || die "no $moddir/modules.dep (kernel $kver not installed?)"
epoch=${SOURCE_DATE_EPOCH:-0}
level=${ZSTD_LEVEL:-19}

stage=$(mktemp -d "${TMPDIR:-/tmp}/mkinitramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root"/{bin,dev,etc,lib/modules/"$kver",mnt,proc,root,run,sys,tmp}
chmod 1777 "$root/tmp"

# copy_file SRC DEST: copy the file SRC points to (following links) to DEST in the image.
copy_file() {
	local src=$1 dest=$root$2
	mkdir -p "${dest%/*}"
	cp -L --preserve=mode "$src" "$dest"
}

# copy_libs PROGRAM: copy the shared libraries and loader PROGRAM needs, at the paths
# the dynamic linker will look for them.
copy_libs() {
	local lib
	# ldd fails for static programs; they need nothing.
	ldd "$1" >/dev/null 2>&1 || return 0
	for lib in $(ldd "$1" | awk '
		$2 == "=>" && $3 ~ /^\// { print $3; next }
		$1 ~ /^\// { print $1 }'); do
		[ -e "$root$lib" ] || copy_file "$lib" "$lib"
	done
}

install -m 0755 "$init" "$root/init"
copy_libs "$init"

for b in "${bins[@]}"; do
	path=$b
	case $b in */*) ;; *) path=$(command -v "$b") || die "program not found: $b" ;; esac
	[ -f "$path" ] || die "program not found: $b"
	copy_file "$path" "/bin/${path##*/}"
	chmod 0755 "$root/bin/${path##*/}"
	copy_libs "$path"
done

for spec in "${extra_files[@]}"; do
	src=${spec%%:*} dest=${spec#*:}
	if [ "$src" = "$spec" ] || [ -z "$dest" ]; then
		die "--file wants SRC:DEST, got: $spec"
	fi
	case $dest in /*) ;; *) die "--file destination must be absolute: $dest" ;; esac
	[ -f "$src" ] || die "file not found: $src"
	copy_file "$src" "$dest"
done

# --- kernel modules ---------------------------------------------------------------
# depmap: "<name> <path> <deps...>" for every module of the kernel (names normalised).
awk -F: '
	{
		n = $1; sub(/.*\//, "", n); sub(/\.ko(\.(xz|zst|gz))?$/, "", n); gsub(/-/, "_", n)
		printf "%s %s%s\n", n, $1, $2
	}' "$moddir/modules.dep" > "$stage/depmap"
: > "$stage/builtin"
if [ -f "$moddir/modules.builtin" ]; then
	sed -e 's|.*/||' -e 's/\.ko$//' -e 's/-/_/g' "$moddir/modules.builtin" > "$stage/builtin"
fi

: > "$stage/files"  # module files to copy, relative to $moddir
: > "$stage/load"   # names to load, in order
# want NAME: queue module NAME and its dependencies; 1 if unknown, 2 if built in
want() {
	local -a paths
	read -ra paths < <(awk -v n="$1" '$1 == n { $1 = ""; print; exit }' "$stage/depmap")
	if [ ${#paths[@]} -eq 0 ]; then
		grep -qx -- "$1" "$stage/builtin" && return 2
		return 1
	fi
	printf '%s\n' "${paths[@]}" >> "$stage/files"
}

sed -e 's/#.*//' "$modlist" | while read -r name rest; do
	[ -n "$name" ] || continue
	[ -z "$rest" ] || die "$modlist: one module per line: $name $rest"
	name=${name//-/_}
	rc=0; want "$name" || rc=$?
	case $rc in
	0) grep -qx -- "$name" "$stage/load" || echo "$name" >> "$stage/load" ;;
	2) note "$name is built into $kver, skipped" ;;
	*) die "module $name not found for kernel $kver" ;;
	esac
done

kodir=$root/lib/modules/$kver
mkdir -p "$kodir"
: > "$stage/extra-dep"
for ko in "${module_files[@]}"; do
	[ -f "$ko" ] || die "module file not found: $ko"
	base=${ko##*/}
	mkdir -p "$kodir/extra"
	# Debug info is for the build tree, not the image (like INSTALL_MOD_STRIP=1).
	strip --strip-debug -o "$kodir/extra/$base" "$ko" 2>/dev/null || cp "$ko" "$kodir/extra/$base"
	chmod 0644 "$kodir/extra/$base"
	deps=()
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		dep=${dep//-/_}
		rc=0; want "$dep" || rc=$?
		[ $rc -ne 1 ] || die "$base depends on $dep, which kernel $kver lacks"
		[ $rc -ne 0 ] || deps+=("$(awk -v n="$dep" '$1 == n { print $2; exit }' "$stage/depmap")")
	done
	echo "extra/$base:${deps[*]:+ ${deps[*]}}" >> "$stage/extra-dep"
done

sort -u "$stage/files" -o "$stage/files"
while read -r f; do
	mkdir -p "$kodir/${f%/*}"
	cp "$moddir/$f" "$kodir/$f"
	chmod 0644 "$kodir/$f"
done < "$stage/files"
# modules.dep: the kernel's lines for the copied files, then the extra modules.
awk -F: 'NR == FNR { keep[$1] = 1; next } ($1 in keep)' "$stage/files" "$moddir/modules.dep" \
	> "$kodir/modules.dep"
cat "$stage/extra-dep" >> "$kodir/modules.dep"
cp "$stage/load" "$kodir/modules.load"
chmod 0644 "$kodir/modules.dep" "$kodir/modules.load"

# --- archive -----------------------------------------------------------------------
# The kernel's built-in initramfs provides /dev/console on Debian; add it too when we can.
if [ "$(id -u)" = 0 ]; then
	mknod -m 0600 "$root/dev/console" c 5 1
fi
find "$root" -exec touch -h -d "@$epoch" {} +
mkdir -p "$(dirname "$out")"
(
	cd "$root"
	find . -mindepth 1 -printf '%P\0' | sort -z |
		cpio --null --create --format=newc --reproducible --owner=0:0 --quiet
) | zstd -q -"$level" -T0 --ultra -c > "$out.tmp"
mv -f "$out.tmp" "$out"

files=$(wc -l < "$stage/files")
size=$(stat -c %s "$out")
note "$out: $((size / 1024)) KiB, $files kernel modules ($(wc -l < "$kodir/modules.load") listed), ${#module_files[@]} extra"
