#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# run.sh: install what is missing, build what is stale, and boot the appliance ISO in
# QEMU with three demo disks (serials prod0: ext4 with files, scratch0, backup0). HTTPS
# is forwarded to https://127.0.0.1:8443/ and the console is this terminal
# (Ctrl-A X quits QEMU; POST /api/v1/shutdown or Ctrl-A C + system_powerdown power off).
#
# Environment:
#   APPLIANCE_HTTPS_PORT      host port for HTTPS (default 8443)
#   APPLIANCE_NBD_PORT        host port for NBD (default 10809)
#   APPLIANCE_KVM=1           use KVM instead of TCG software emulation
#   APPLIANCE_DEMO_PASSWORD   the admin password passed via fw_cfg (default demo-admin)
#   APPLIANCE_UEFI=1          boot with OVMF instead of SeaBIOS
#   APPLIANCE_IMAGE=qcow2     boot the qcow2 (a throw-away overlay) instead of the ISO
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
cd "$root"

port=${APPLIANCE_HTTPS_PORT:-8443}
nbd_port=${APPLIANCE_NBD_PORT:-10809}
password=${APPLIANCE_DEMO_PASSWORD:-demo-admin}
demo=$root/target/demo

scripts/install-deps.sh
make -C images

mkdir -p "$demo"
# prod0: a real ext4 filesystem with files, made on the host (mkfs.ext4 -d).
if [ ! -f "$demo/prod0.img" ]; then
	tree=$demo/prod0-tree
	rm -rf "$tree"
	mkdir -p "$tree/etc" "$tree/home/alice" "$tree/var/log"
	echo production > "$tree/etc/hostname"
	printf 'line %d of a log file\n' $(seq 1 2000) > "$tree/var/log/app.log"
	head -c 4194304 /dev/urandom > "$tree/home/alice/photo.raw"
	echo "Hello from the production disk." > "$tree/home/alice/notes.txt"
	mkfs.ext4 -q -F -L prod0 -d "$tree" "$demo/prod0.img" 256M
	rm -rf "$tree"
fi
[ -f "$demo/scratch0.img" ] || truncate -s 1G "$demo/scratch0.img"
[ -f "$demo/backup0.img" ] || truncate -s 2G "$demo/backup0.img"

args=(-name blksnap-appliance -machine q35 -m 1024 -smp 2 -nographic -no-reboot
	-serial mon:stdio -device virtio-rng-pci)
if [ "${APPLIANCE_KVM:-}" = 1 ]; then
	args+=(-accel kvm -cpu host)
else
	args+=(-accel tcg -cpu max)
fi
if [ "${APPLIANCE_UEFI:-}" = 1 ]; then
	code=/usr/share/OVMF/OVMF_CODE_4M.fd vars=/usr/share/OVMF/OVMF_VARS_4M.fd
	[ -f "$code" ] || code=/usr/share/OVMF/OVMF_CODE.fd vars=/usr/share/OVMF/OVMF_VARS.fd
	cp "$vars" "$demo/OVMF_VARS.fd"
	args+=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
		-drive "if=pflash,format=raw,unit=1,file=$demo/OVMF_VARS.fd")
fi
if [ "${APPLIANCE_IMAGE:-iso}" = qcow2 ]; then
	qemu-img create -q -f qcow2 -F qcow2 -b "$root/images/out/appliance.qcow2" "$demo/boot.qcow2"
	args+=(-drive "if=none,id=boot0,format=qcow2,file=$demo/boot.qcow2"
		-device virtio-blk-pci,drive=boot0,bootindex=0)
else
	args+=(-drive "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=$root/images/out/appliance.iso"
		-device ide-cd,drive=cd0,bootindex=0)
fi
for disk in prod0 scratch0 backup0; do
	args+=(-drive "if=none,id=$disk,format=raw,discard=unmap,file=$demo/$disk.img"
		-device "virtio-blk-pci,drive=$disk,serial=$disk")
done
args+=(-netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:443,hostfwd=tcp:127.0.0.1:$nbd_port-:10809"
	-device virtio-net-pci,netdev=net0
	-fw_cfg "name=opt/appliance/config,string=password=$password")

url=https://127.0.0.1:$port/
cat <<INFO

blksnap appliance demo
  web UI and REST API: $url   (self-signed certificate: accept it, or curl -k)
  log in as:           admin / $password   (passed to the appliance via fw_cfg)
  try:                 curl -k ${url}api/v1/health
  disks:               prod0 (ext4 with files), scratch0, backup0 in $demo
  quit:                Ctrl-A X (or POST ${url}api/v1/shutdown with a token)

INFO

# Tell the user when the API answers (the console scrolls a lot before that).
(
	for _ in $(seq 1 600); do
		if curl -skf --max-time 2 "${url}api/v1/health" > /dev/null 2>&1; then
			printf '\r\n*** appliance ready: %s (user admin, password %s) ***\r\n' "$url" "$password"
			exit 0
		fi
		sleep 2
	done
) &
watcher=$!
trap 'kill $watcher 2>/dev/null || true' EXIT
qemu-system-x86_64 "${args[@]}"
