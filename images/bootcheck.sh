#!/bin/bash
# QEMU option values carry commas by design.
# shellcheck disable=SC2054
# SPDX-License-Identifier: GPL-2.0-only
#
# bootcheck.sh ISO QCOW2: boot the ISO (CD-ROM) and the qcow2 (virtio-blk disk) under
# SeaBIOS and OVMF with QEMU (TCG unless APPLIANCE_KVM=1), two at a time, and wait for
# NEEDLE on the serial console (default: the kernel starting /init). Serial logs go to
# build/bootcheck/<case>.log. Prints seconds to the needle; exit status 1 if any failed.
#
# Environment: NEEDLE, BOOT_TIMEOUT (seconds per boot, default 300).
set -uo pipefail

iso=${1:?usage: bootcheck.sh ISO QCOW2}
qcow2=${2:?usage: bootcheck.sh ISO QCOW2}
needle=${NEEDLE:-Run /init as init process}
limit=${BOOT_TIMEOUT:-300}
dir=$(cd "$(dirname "$0")" && pwd)/build/bootcheck
mkdir -p "$dir"
ovmf=/usr/share/OVMF
code=$ovmf/OVMF_CODE_4M.fd vars=$ovmf/OVMF_VARS_4M.fd
[ -f "$code" ] || code=$ovmf/OVMF_CODE.fd vars=$ovmf/OVMF_VARS.fd
if [ "${APPLIANCE_KVM:-}" = 1 ]; then accel=(-accel kvm -cpu host); else accel=(-accel tcg -cpu max); fi

# boot CASE FIRMWARE MEDIUM: one VM; prints "CASE ok N s" or "CASE FAILED ..."
boot() {
	local name=$1 fw=$2 medium=$3 log=$dir/$1.log args pid start now
	args=(-machine q35 "${accel[@]}" -m 1024 -smp 2 -nographic -monitor none -no-reboot
		-serial "file:$log" -nic none -device virtio-rng-pci)
	if [ "$fw" = uefi ]; then
		cp "$vars" "$dir/$name.vars"
		args+=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
			-drive "if=pflash,format=raw,unit=1,file=$dir/$name.vars")
	fi
	if [ "$medium" = cdrom ]; then
		args+=(-drive "if=none,id=boot,media=cdrom,readonly=on,format=raw,file=$iso"
			-device ide-cd,drive=boot,bootindex=0)
	else
		qemu-img create -q -f qcow2 -F qcow2 -b "$(realpath "$qcow2")" "$dir/$name.qcow2"
		args+=(-drive "if=none,id=boot,format=qcow2,file=$dir/$name.qcow2"
			-device virtio-blk-pci,drive=boot,bootindex=0)
	fi
	: > "$log"
	start=$(date +%s%N)
	qemu-system-x86_64 "${args[@]}" > "$dir/$name.qemu" 2>&1 < /dev/null &
	pid=$!
	while :; do
		now=$(date +%s%N)
		if grep -aqF "$needle" "$log"; then
			printf '%-10s ok   %5.1f s to "%s"\n' "$name" "$(( (now - start) / 1000000 ))e-3" "$needle"
			kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null || [ $(( (now - start) / 1000000000 )) -ge "$limit" ]; then
			kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
			printf '%-10s FAILED: no "%s"; see %s\n' "$name" "$needle" "$log"
			return 1
		fi
		sleep 0.2
	done
}

rc=0
boot bios-cd bios cdrom & p1=$!
boot uefi-cd uefi cdrom & p2=$!
wait $p1 || rc=1; wait $p2 || rc=1
boot bios-disk bios disk & p1=$!
boot uefi-disk uefi disk & p2=$!
wait $p1 || rc=1; wait $p2 || rc=1
exit $rc
