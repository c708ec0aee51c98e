#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# br2-external/check.sh: offline checks of the Buildroot external tree. No
# internet is needed; nothing outside a temporary directory is written.
#
#   BUILDROOT=/path/to/buildroot br2-external/check.sh
#
# Always (nothing but bash, make and coreutils needed):
#   drift    every module of images/modules.list has a "# module: NAME" line in
#            board/appliance/linux.fragment directly above an option set to y or
#            m; the package versions equal the workspace version in Cargo.toml;
#            images/Makefile yields the kernel command line and config partition
#            size post-image.sh reads; the GRUB templates have their placeholders
#   images   with Debian's GRUB, xorriso, mtools, dosfstools and e2fsprogs
#            installed: images/mkiso.sh given the GRUB directories and
#            grub-mkimage by option, as post-image.sh calls it, makes the ISO and
#            disk image it makes with its defaults, byte for byte (else SKIPPED)
# With LINUX_SRC=/path/to/a/linux-6.1/source (optional, needs gcc, flex, bison):
#   kconfig  the fragment merged onto that tree's x86_64_defconfig keeps every
#            option, and each "# module:" line names a module its option builds
# With BUILDROOT set (a Buildroot source tree, 2025.02.x expected):
#   defconfig  every configs/*_defconfig loads with `make BR2_EXTERNAL=...
#            <name>_defconfig`, and every symbol line of it is in the resulting
#            .config with the same value (Kconfig drops unknown symbols and
#            unmet dependencies silently); the kernel version has a hash in
#            Buildroot's linux/linux.hash (the defconfig forces hash checks) and
#            the same series as the toolchain headers; the local package
#            sources resolve; savedefconfig gives the committed file (a note)
#   check-package  utils/check-package --br2-external on every file of the tree
#            (needs a python with the python-magic and flake8 modules, named
#            by PYTHON=..., default python3, and shellcheck on PATH)
# Without BUILDROOT the Buildroot checks are SKIPPED, said plainly, and do not
# fail the run. Exit status: 0 when every check that ran passed, 1 otherwise.
set -uo pipefail
export LC_ALL=C

prog=br2-external/check.sh
ext=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$ext/.." && pwd -P)
fragment=$ext/board/appliance/linux.fragment
modlist=$repo/images/modules.list
python=${PYTHON:-python3}

failures=0
say() { echo "$prog: $*"; }
fail() { echo "$prog: FAIL: $*" >&2; failures=$((failures + 1)); }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/br2-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- drift: images/modules.list against the kernel fragment -------------------
# Prints "module symbol value" for each "# module:" annotation, or a line
# starting with "error" for an annotation that is not directly above an option.
annotations() {
	awk '
	/^# module:/ {
		sub(/^# module:[[:space:]]*/, "")
		for (i = 1; i <= NF; i++) pending[++n] = $i
		line = NR
		next
	}
	n > 0 {
		if (match($0, /^CONFIG_[A-Za-z0-9_]+=/)) {
			sym = substr($0, 1, RLENGTH - 1)
			val = substr($0, RLENGTH + 1)
			for (i = 1; i <= n; i++) print pending[i], sym, val
		} else {
			print "error line " line ": \"# module:\" is not directly above a CONFIG_ option"
		}
		n = 0
	}
	END { if (n > 0) print "error line " line ": \"# module:\" at the end of the file" }
	' "$fragment"
}

check_modules() {
	annotations > "$tmp/annotations"
	if [ ! -f "$modlist" ]; then
		fail "drift: $modlist not found"
		return
	fi
	if grep '^error' "$tmp/annotations" | sed "s|^error|$fragment:|" >&2; then
		fail "drift: malformed annotations in the fragment"
	fi
	local name rest sym val listed=0 yes=0 mod=0 bad=0
	while read -r name rest; do
		[ -n "$name" ] || continue
		name=${name//-/_}
		listed=$((listed + 1))
		read -r sym val < <(awk -v n="$name" '$1 == n { print $2, $3; exit }' "$tmp/annotations")
		case ${val:-} in
		y) yes=$((yes + 1)) ;;
		m) mod=$((mod + 1)) ;;
		'') bad=$((bad + 1)); echo "  $name: no '# module: $name' line in the fragment" >&2 ;;
		*) bad=$((bad + 1)); echo "  $name: $sym=$val in the fragment, want y or m" >&2 ;;
		esac
		sym='' val=''
	done < <(sed -e 's/#.*//' "$modlist")
	printf '%s\n' "$listed" > "$tmp/listed"
	if [ "$bad" -gt 0 ]; then
		fail "drift: $bad of $listed modules in images/modules.list are not enabled in board/appliance/linux.fragment"
	else
		say "drift: $listed modules in images/modules.list, all enabled in linux.fragment ($yes built in, $mod as modules)"
	fi
	# Annotations for modules the list no longer names: harmless, but say so.
	awk '$1 != "error" { print $1 }' "$tmp/annotations" | sort -u > "$tmp/annotated"
	sed -e 's/#.*//' -e 's/-/_/g' "$modlist" | awk 'NF { print $1 }' | sort -u > "$tmp/wanted"
	local stale
	stale=$(comm -23 "$tmp/annotated" "$tmp/wanted" | tr '\n' ' ')
	[ -z "$stale" ] || say "drift: note: annotated but not in images/modules.list: $stale"
}

check_versions() {
	local want pkg got ok=1
	want=$(awk '/^\[/ { s = ($0 == "[workspace.package]") } s && /^version *=/ {
		gsub(/.*= *"|".*/, ""); print; exit }' "$repo/Cargo.toml")
	for pkg in blksnap appliance; do
		got=$(sed -n "s/^$(echo "$pkg" | tr 'a-z-' 'A-Z_')_VERSION = //p" "$ext/package/$pkg/$pkg.mk")
		if [ -z "$want" ] || [ "$got" != "$want" ]; then
			fail "drift: package/$pkg/$pkg.mk has version '$got', Cargo.toml [workspace.package] '$want'"
			ok=0
		fi
	done
	[ "$ok" = 0 ] || say "drift: package versions = workspace version $want"
}

# The settings post-image.sh reads from images/Makefile.
check_image_settings() {
	local out
	# shellcheck disable=SC2016 # $(...) is make syntax, expanded by that make
	if ! out=$(env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s --no-print-directory \
		-C "$repo/images" KVER=unused \
		--eval 'appliance-settings: ; @printf "%s|%s\n" "$(strip $(CMDLINE))" "$(CONFIG_MIB)"' \
		appliance-settings 2> "$tmp/settings.err"); then
		cat "$tmp/settings.err" >&2
		fail "drift: cannot read CMDLINE and CONFIG_MIB from images/Makefile"
		return
	fi
	case $out in
	*console=ttyS0*\|[0-9]*) say "drift: images/Makefile: cmdline '${out%|*}', config partition ${out#*|} MiB" ;;
	*) fail "drift: images/Makefile gave CMDLINE|CONFIG_MIB = '$out' (want a serial console and a size)" ;;
	esac
	local cfg=$repo/images/grub
	if ! grep -q '@CMDLINE@' "$cfg/grub.cfg" || ! grep -q '@UUID@' "$cfg/early.cfg" ||
		! awk '$1 == "linux" && $2 ~ /^\/boot\// { k = 1 } $1 == "initrd" && $2 ~ /^\/boot\// { i = 1 }
			END { exit !(k && i) }' "$cfg/grub.cfg"; then
		fail "drift: images/grub/{grub,early}.cfg lack @CMDLINE@, @UUID@ or linux/initrd /boot/ lines"
	fi
}

# images/mkiso.sh as post-image.sh runs it (GRUB named by option) and as
# images/Makefile runs it (Debian's GRUB by default), on the same inputs.
check_images() {
	local t missing=''
	for t in grub-mkimage xorriso mkfs.vfat mmd mcopy mkfs.ext4; do
		command -v "$t" >/dev/null || missing="$missing $t"
	done
	[ -f /usr/lib/grub/i386-pc/boot_hybrid.img ] || missing="$missing grub-pc-bin"
	[ -f /usr/lib/grub/x86_64-efi/moddep.lst ] || missing="$missing grub-efi-amd64-bin"
	[ -x "$repo/images/mkiso.sh" ] || missing="$missing images/mkiso.sh"
	if [ -n "$missing" ]; then
		say "images: SKIPPED (missing:$missing)"
		return
	fi
	# Stand-in kernel and initramfs: the layout does not depend on their content.
	head -c 300000 /dev/zero | tr '\0' 'k' > "$tmp/kernel"
	head -c 200000 /dev/zero | tr '\0' 'i' > "$tmp/initrd"
	local args=(--kernel "$tmp/kernel" --initrd "$tmp/initrd" --cmdline "console=ttyS0 check"
		--config-mib 4)
	local -x SOURCE_DATE_EPOCH=1700000000
	if ! "$repo/images/mkiso.sh" "${args[@]}" --iso "$tmp/a.iso" --disk "$tmp/a.img" \
		--work "$tmp/wa" > "$tmp/mkiso.log" 2>&1; then
		cat "$tmp/mkiso.log" >&2
		fail "images: images/mkiso.sh failed"
		return
	fi
	if ! "$repo/images/mkiso.sh" "${args[@]}" --iso "$tmp/b.iso" --disk "$tmp/b.img" \
		--work "$tmp/wb" --grub-pc /usr/lib/grub/i386-pc --grub-efi /usr/lib/grub/x86_64-efi \
		--grub-mkimage "$(command -v grub-mkimage)" > "$tmp/mkiso.log" 2>&1; then
		cat "$tmp/mkiso.log" >&2
		fail "images: images/mkiso.sh --grub-pc --grub-efi --grub-mkimage failed"
		return
	fi
	if cmp -s "$tmp/a.iso" "$tmp/b.iso" && cmp -s "$tmp/a.img" "$tmp/b.img"; then
		say "images: images/mkiso.sh with GRUB named (post-image.sh) = with its defaults (ISO $(($(stat -c %s "$tmp/a.iso") / 1024)) KiB and disk image byte-identical)"
	else
		fail "images: images/mkiso.sh gives other bytes when the GRUB directories are named: the options must only choose where GRUB comes from"
	fi
	rm -rf "$tmp/wa" "$tmp/wb" "$tmp"/[ab].iso "$tmp"/[ab].img
}

# --- rust: what Buildroot compiles must build with its Rust ----------------------
# Every crate the appliance package builds for the target (normal and build
# dependencies, from Cargo.lock) declares a rust-version no newer than the
# workspace's, which is the Rust of Buildroot 2025.02.x (1.82). Cargo refuses a
# crate whose rust-version is newer than the compiler.
check_rust() {
	local msrv
	msrv=$(awk '/^\[/ { s = ($0 == "[workspace.package]") } s && /^rust-version *=/ {
		gsub(/.*= *"|".*/, ""); print; exit }' "$repo/Cargo.toml")
	if [ -z "$msrv" ]; then
		fail "rust: Cargo.toml [workspace.package] declares no rust-version"
		return
	fi
	if [ -n "${BUILDROOT:-}" ] && [ -f "$BUILDROOT/package/rust-bin/rust-bin.mk" ]; then
		local brrust
		brrust=$(sed -n 's/^RUST_BIN_VERSION = //p' "$BUILDROOT/package/rust-bin/rust-bin.mk")
		if [ "$(printf '%s\n%s\n' "$msrv" "$brrust" | sort -V | tail -n 1)" != "$brrust" ]; then
			fail "rust: the workspace needs Rust $msrv, Buildroot has $brrust"
		fi
	fi
	if ! command -v cargo > /dev/null || ! command -v python3 > /dev/null; then
		say "rust: SKIPPED (no cargo or python3)"
		return
	fi
	if ! (cd "$repo" && cargo metadata --format-version 1 --locked --offline \
		--filter-platform x86_64-unknown-linux-gnu) > "$tmp/metadata.json" 2> "$tmp/metadata.err"; then
		say "rust: SKIPPED (cargo metadata --offline failed: crates not fetched? $(tail -n 1 "$tmp/metadata.err"))"
		return
	fi
	local out
	if out=$(python3 - "$tmp/metadata.json" "$msrv" appliance << 'PY'
import json
import sys

meta = json.load(open(sys.argv[1]))
limit, root = sys.argv[2], sys.argv[3]

def key(version):
    parts = [int(x) for x in version.split(".")[:3]]
    return parts + [0] * (3 - len(parts))

packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
start = [i for i, p in packages.items() if p["name"] == root and p["source"] is None]
seen, todo = set(), list(start)
while todo:
    node = todo.pop()
    if node in seen:
        continue
    seen.add(node)
    for dep in nodes[node]["deps"]:
        if any(k["kind"] != "dev" for k in dep["dep_kinds"]):
            todo.append(dep["pkg"])
crates = [packages[i] for i in seen if packages[i]["source"] is not None]
newer = sorted("%s %s (rust-version %s)" % (p["name"], p["version"], p["rust_version"])
               for p in crates if p.get("rust_version") and key(p["rust_version"]) > key(limit))
undeclared = sum(1 for p in crates if not p.get("rust_version"))
print("%d %d" % (len(crates), undeclared))
for line in newer:
    print(line)
sys.exit(1 if newer else 0)
PY
	); then
		local ncrates nnone
		read -r ncrates nnone <<< "$out"
		say "rust: appliance builds $ncrates crates for the target, none declares a rust-version newer than $msrv ($nnone declare none)"
	else
		printf '%s\n' "$out" | tail -n +2 | sed 's/^/  /' >&2
		fail "rust: crates the appliance builds need a Rust newer than $msrv (Buildroot 2025.02.x has 1.82)"
	fi
}

# --- kconfig: the fragment against a Linux source tree (optional) --------------
check_kconfig() {
	local src=$1 out=$tmp/linux
	if [ ! -f "$src/Makefile" ] || [ ! -f "$src/arch/x86/configs/x86_64_defconfig" ]; then
		fail "kconfig: LINUX_SRC=$src is not a Linux source tree"
		return
	fi
	local kver
	kver=$(make -s -C "$src" kernelversion 2>/dev/null)
	mkdir -p "$out"
	if ! { make -s -C "$src" O="$out" x86_64_defconfig &&
		ARCH=x86_64 "$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$fragment" &&
		make -s -C "$src" O="$out" olddefconfig; } > "$tmp/kconfig.log" 2>&1; then
		cat "$tmp/kconfig.log" >&2
		fail "kconfig: merging the fragment onto $src failed"
		return
	fi
	local line n=0 lost=0
	while read -r line; do
		n=$((n + 1))
		grep -qxF -- "$line" "$out/.config" || { lost=$((lost + 1)); echo "  lost: $line" >&2; }
	done < <(grep -E '^(CONFIG_|# CONFIG_.* is not set$)' "$fragment")
	if [ "$lost" -gt 0 ]; then
		fail "kconfig: $lost of $n fragment options did not survive on Linux $kver"
	else
		say "kconfig: Linux $kver x86_64_defconfig + fragment keeps all $n options"
	fi
	# Each annotation: the module's object is built by that option.
	local mod sym val pat wrong=0 mapped=0
	while read -r mod sym val; do
		[ "$mod" != error ] || continue
		mapped=$((mapped + 1))
		# Object names spell some underscores as dashes (nls_iso8859-1.o).
		pat="obj-\\\$\\(${sym}\\)[[:space:]]*[+:]=.*(^|[[:space:]])${mod//_/[-_]}\\.o"
		grep -rqE --include=Makefile --include=Kbuild -- "$pat" "$src" ||
			{ wrong=$((wrong + 1)); echo "  $mod: no obj-\$($sym) += $mod.o in $src" >&2; }
	done < "$tmp/annotations"
	if [ "$wrong" -gt 0 ]; then
		fail "kconfig: $wrong of $mapped '# module:' lines name the wrong option"
	else
		say "kconfig: all $mapped '# module:' lines name the option that builds the module"
	fi
}

# --- Buildroot -----------------------------------------------------------------
br_make() {
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s --no-print-directory -C "$BUILDROOT" \
		O="$tmp/out" BR2_EXTERNAL="$ext" "$@"
}

check_defconfig() {
	local defconfig=$1 name
	name=$(basename "$defconfig")
	rm -rf "$tmp/out"
	if ! br_make "$name" > "$tmp/defconfig.log" 2>&1; then
		cat "$tmp/defconfig.log" >&2
		fail "defconfig: make $name failed"
		return 1
	fi
	local line n=0 lost=0
	while read -r line; do
		n=$((n + 1))
		grep -qxF -- "$line" "$tmp/out/.config" ||
			{ lost=$((lost + 1)); echo "  dropped or changed: $line" >&2; }
	done < <(sed -e 's/[[:space:]]*$//' "$defconfig" | grep -E '^(BR2_[A-Za-z0-9_]+=|# BR2_[A-Za-z0-9_]+ is not set$)')
	symbols=$((symbols + n))
	if [ "$lost" -gt 0 ]; then
		fail "defconfig: $name: $lost of $n symbols are not in .config with the same value"
	else
		say "defconfig: $name loads; all $n symbols in .config with the same value"
	fi
	if [ -f "$BUILDROOT/support/scripts/check-dotconfig.py" ] &&
		! "$python" "$BUILDROOT/support/scripts/check-dotconfig.py" "$tmp/out/.config" "$defconfig" >&2; then
		fail "defconfig: $name: Buildroot's check-dotconfig.py disagrees"
	fi

	# The kernel tarball must have a hash (BR2_DOWNLOAD_FORCE_CHECK_HASHES) and
	# the toolchain headers must be the kernel's series.
	local kver hver
	kver=$(sed -n 's/^BR2_LINUX_KERNEL_VERSION="\(.*\)"$/\1/p' "$tmp/out/.config")
	hver=$(sed -n 's/^BR2_DEFAULT_KERNEL_HEADERS="\(.*\)"$/\1/p' "$tmp/out/.config")
	if [ -n "$kver" ]; then
		if grep -q '^BR2_DOWNLOAD_FORCE_CHECK_HASHES=y$' "$tmp/out/.config" &&
			! grep -qE "[[:space:]]linux-${kver//./\\.}\\.tar\\.xz$" "$BUILDROOT/linux/linux.hash"; then
			fail "defconfig: $name: linux-$kver.tar.xz has no hash in linux/linux.hash: pick a version Buildroot has or add a hash file"
		fi
		if [ "${kver%.*}" != "${hver%.*}" ]; then
			fail "defconfig: $name: kernel $kver but toolchain headers $hver (want the same series)"
		else
			say "defconfig: $name: kernel $kver (hash in linux/linux.hash), headers $hver"
		fi
	fi

	# The local package sources resolve to the project's directories.
	if br_make printvars VARS='BLKSNAP_OVERRIDE_SRCDIR APPLIANCE_OVERRIDE_SRCDIR APPLIANCE_SUBDIR' \
		> "$tmp/vars" 2> "$tmp/vars.err"; then
		local kdir adir asub
		kdir=$(sed -n 's/^BLKSNAP_OVERRIDE_SRCDIR=//p' "$tmp/vars")
		adir=$(sed -n 's/^APPLIANCE_OVERRIDE_SRCDIR=//p' "$tmp/vars")
		asub=$(sed -n 's/^APPLIANCE_SUBDIR=//p' "$tmp/vars")
		if [ -f "$kdir/Kbuild" ] && [ -f "$adir/Cargo.lock" ] && [ -f "$adir/$asub/Cargo.toml" ]; then
			say "defconfig: sources: blksnap from $(cd "$kdir" && pwd -P), appliance from $(cd "$adir" && pwd -P)/$asub"
		else
			fail "defconfig: package sources do not resolve: blksnap '$kdir' (want Kbuild), appliance '$adir' + '$asub' (want Cargo.lock, Cargo.toml)"
		fi
	else
		cat "$tmp/vars.err" >&2
		fail "defconfig: make printvars failed"
	fi

	if br_make savedefconfig BR2_DEFCONFIG="$tmp/saved_defconfig" > /dev/null 2>&1; then
		if diff -u "$defconfig" "$tmp/saved_defconfig" > "$tmp/saved.diff"; then
			say "defconfig: $name is normalized (savedefconfig gives the same file)"
		else
			say "defconfig: note: $name differs from savedefconfig's output ($(grep -c '^[-+]BR2\|^[-+]# BR2' "$tmp/saved.diff") lines); normalize with: make O=... BR2_EXTERNAL=... $name savedefconfig"
		fi
	fi
}

check_package() {
	if ! "$python" -c 'import magic, flake8' 2> /dev/null; then
		fail "check-package: $python lacks the python-magic and flake8 modules (python3 -m venv V && V/bin/pip install python-magic flake8; then PYTHON=V/bin/python)"
		return
	fi
	command -v shellcheck > /dev/null || { fail "check-package: shellcheck not found (apt-get install shellcheck)"; return; }
	local files=() ignore=() linted total
	mapfile -t files < <(cd "$ext" && find . -type f ! -path './.git/*' | sed 's|^\./||' | sort)
	total=${#files[@]}
	[ ! -f "$ext/.checkpackageignore" ] || ignore=(--ignore-list .checkpackageignore)
	linted=$(cd "$ext" && "$python" "$BUILDROOT/utils/check-package" -b --dry-run "${ignore[@]}" "${files[@]}" 2>/dev/null | grep -c ': would run:')
	(cd "$ext" && "$python" "$BUILDROOT/utils/check-package" -b "${ignore[@]}" "${files[@]}") > "$tmp/cp.out" 2> "$tmp/cp.err"
	local rc=$? lines warnings
	lines=$(sed -n 's/^\([0-9]*\) lines processed$/\1/p' "$tmp/cp.err")
	warnings=$(sed -n 's/^\([0-9]*\) warnings generated$/\1/p' "$tmp/cp.err")
	if [ "$rc" -ne 0 ] || [ "${warnings:-1}" != 0 ]; then
		cat "$tmp/cp.out" "$tmp/cp.err" >&2
		fail "check-package: ${warnings:-?} warnings in ${linted:-?} linted files"
	else
		say "check-package: $total files given, $linted linted (the rest have no Buildroot format), ${lines:-?} lines, 0 warnings"
	fi
}

# --- run ---------------------------------------------------------------------------
check_modules
check_versions
check_image_settings
check_images
check_rust
if [ -n "${LINUX_SRC:-}" ]; then
	check_kconfig "$LINUX_SRC"
else
	say "kconfig: SKIPPED (set LINUX_SRC=/path/to/linux-6.1 to merge the fragment onto its x86_64_defconfig)"
fi

symbols=0
if [ -z "${BUILDROOT:-}" ]; then
	say "buildroot: SKIPPED: BUILDROOT is not set, so the defconfig and check-package checks did not run"
	say "buildroot: (BUILDROOT=/path/to/buildroot-2025.02.x $prog runs them, offline)"
elif [ ! -f "$BUILDROOT/Makefile" ] || [ ! -x "$BUILDROOT/utils/check-package" ]; then
	fail "buildroot: BUILDROOT=$BUILDROOT is not a Buildroot source tree"
else
	BUILDROOT=$(cd "$BUILDROOT" && pwd -P)
	version=$(sed -n 's/^export BR2_VERSION := //p' "$BUILDROOT/Makefile")
	commit=$(git -C "$BUILDROOT" rev-parse --short=12 HEAD 2>/dev/null || echo "no git metadata")
	say "buildroot: $version ($commit) at $BUILDROOT"
	case $version in
	2025.02.*) ;;
	*) say "buildroot: note: the tree targets 2025.02.x LTS; this is $version" ;;
	esac
	ndefconfigs=0
	for defconfig in "$ext"/configs/*_defconfig; do
		[ -f "$defconfig" ] || continue
		ndefconfigs=$((ndefconfigs + 1))
		check_defconfig "$defconfig"
	done
	[ "$ndefconfigs" -gt 0 ] || fail "defconfig: no configs/*_defconfig in $ext"
	say "defconfig: $ndefconfigs defconfigs, $symbols symbols checked"
	check_package
fi

if [ "$failures" -gt 0 ]; then
	say "FAILED: $failures checks failed"
	exit 1
fi
say "OK"
