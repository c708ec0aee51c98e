#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# run-all.sh: every test group of the project, one after the other, then a table of
# each group's time and result. Exit status 0 only if every group passed.
#
#   tests/run-all.sh              all groups
#   tests/run-all.sh GROUP...     only these (names as in the table, e.g. unit vm:appliance)
#   tests/run-all.sh --list       list the groups
#
# Groups: deps (scripts/install-deps.sh), fmt (cargo fmt --check), clippy (-D warnings),
# unit (cargo test of every crate but the QEMU suites), kmod (make -C kmod, plus
# make -C kmod check: checkpatch), images (make -C images), br2 (br2-external/check.sh),
# then one group per QEMU
# suite in tests/tests/*.rs (vm:kmod, vm:appliance, ...), each with two test threads so
# at most two VMs run at once (the harness enforces the same limit).
# Environment: APPLIANCE_KVM=1 (use KVM), APPLIANCE_TIMEOUT_FACTOR (slow hosts), KVER.
set -uo pipefail
export LC_ALL=C
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

vm_suites=()
for f in tests/tests/*.rs; do
	vm_suites+=("vm:$(basename "$f" .rs)")
done
all_groups=(deps fmt clippy unit kmod images br2 "${vm_suites[@]}")

if [ "${1:-}" = --list ]; then
	printf '%s\n' "${all_groups[@]}"
	exit 0
fi
groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=("${all_groups[@]}")
for g in "${groups[@]}"; do
	printf '%s\n' "${all_groups[@]}" | grep -qx -- "$g" || {
		echo "run-all: unknown group $g (see --list)" >&2
		exit 2
	}
done

# group_cmd GROUP: run the group's commands; status is the group's result.
group_cmd() {
	case $1 in
	deps) scripts/install-deps.sh ;;
	fmt) cargo fmt --all -- --check ;;
	clippy) cargo clippy --workspace --all-targets -- -D warnings ;;
	unit)
		cargo test --workspace --exclude appliance-tests &&
			cargo test -p appliance-tests --lib --bins
		;;
	kmod)
		make -C kmod && make -C kmod check
		;;
	images) make -C images ;;
	# Drift checks between images/ and br2-external/; the Buildroot checks run when
	# BUILDROOT=/path/to/buildroot-2025.02.x is set and say SKIPPED otherwise.
	br2) br2-external/check.sh ;;
	vm:*)
		cargo test -p appliance-tests --test "${1#vm:}" -- --test-threads=2 --nocapture
		;;
	esac
}

names=() times=() results=()
failed=0 passed=0
total_start=$(date +%s)
for g in "${groups[@]}"; do
	echo
	echo "=== run-all: $g ==="
	start=$(date +%s)
	if group_cmd "$g"; then
		result=ok
		passed=$((passed + 1))
	else
		result=FAILED
		failed=$((failed + 1))
	fi
	names+=("$g") times+=($(($(date +%s) - start))) results+=("$result")
	echo "=== run-all: $g $result ($((${times[-1]})) s) ==="
	# Without the Rust tools nothing else can run.
	if [ "$g" = deps ] && [ "$result" != ok ]; then
		break
	fi
done

echo
echo "run-all: timing per group"
printf '  %-22s %8s  %s\n' group seconds result
for i in "${!names[@]}"; do
	printf '  %-22s %8d  %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
done
printf '  %-22s %8d\n' total $(($(date +%s) - total_start))
echo "groups: $passed passed, $failed failed"
[ $failed -eq 0 ]
