#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Buildroot post-build script (BR2_ROOTFS_POST_BUILD_SCRIPT): $1 is TARGET_DIR.
# Runs after depmod, before the initramfs is packed.
#   - /init is the supervisor (a link to /usr/bin/appliance): no other init;
#   - /lib/modules/<release>/modules.load lists, in order, the modules of
#     images/modules.list (the one list images/ follows too) that this kernel
#     builds as modules; built-in ones are skipped; a listed module the kernel
#     has neither way fails the build, as does a missing blksnap.ko.
# APPLIANCE_MODULES_LIST overrides the list's path.
set -euo pipefail
export LC_ALL=C

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }
note() { echo "$prog: $*"; }

target=${1:?usage: $prog TARGET_DIR}
ext=${BR2_EXTERNAL_APPLIANCE_PATH:?run by Buildroot with the APPLIANCE external tree}
list=${APPLIANCE_MODULES_LIST:-$ext/../images/modules.list}
[ -f "$list" ] || die "module list not found: $list"

[ -x "$target/usr/bin/appliance" ] || die "$target/usr/bin/appliance missing (BR2_PACKAGE_APPLIANCE)"
ln -sfn usr/bin/appliance "$target/init"

releases=$(find "$target/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null || true)
[ "$(printf '%s\n' "$releases" | grep -c .)" = 1 ] ||
	die "expected one kernel release in $target/lib/modules, found: ${releases:-none}"
moddir=$target/lib/modules/$releases
[ -f "$moddir/modules.dep" ] || die "$moddir/modules.dep missing (depmod did not run?)"

# Normalised names (- becomes _) of the installed and the built-in modules.
names_of() {
	sed -e 's/:.*//' -e 's|.*/||' -e 's/\.ko\(\.[a-z]*\)\{0,1\}$//' -e 's/-/_/g' "$@"
}
names_of "$moddir/modules.dep" | sort -u > "$moddir/.installed"
if [ -f "$moddir/modules.builtin" ]; then
	names_of "$moddir/modules.builtin" | sort -u > "$moddir/.builtin"
else
	: > "$moddir/.builtin"
fi

if grep -q '^BR2_PACKAGE_BLKSNAP=y$' "${BR2_CONFIG:-/dev/null}"; then
	grep -qx blksnap "$moddir/.installed" || die "blksnap.ko is not in $moddir/modules.dep"
fi

: > "$moddir/modules.load"
listed=0 loadable=0 builtin=0 missing=
while read -r name rest; do
	[ -n "$name" ] || continue
	[ -z "$rest" ] || die "$list: one module per line: $name $rest"
	name=${name//-/_}
	listed=$((listed + 1))
	if grep -qx -- "$name" "$moddir/.installed"; then
		grep -qx -- "$name" "$moddir/modules.load" || echo "$name" >> "$moddir/modules.load"
		loadable=$((loadable + 1))
	elif grep -qx -- "$name" "$moddir/.builtin"; then
		builtin=$((builtin + 1))
	else
		missing="$missing $name"
	fi
done < <(sed -e 's/#.*//' "$list")
rm -f "$moddir/.installed" "$moddir/.builtin"
[ -z "$missing" ] || die "kernel $releases has neither built in nor as a module:$missing" \
	"(enable them in board/appliance/linux.fragment)"
note "kernel $releases: $listed listed modules, $builtin built in, $loadable in modules.load"
