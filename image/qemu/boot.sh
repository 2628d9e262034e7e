#!/usr/bin/env bash
# Boots an SD card written from the qemu boot test's image under
# qemu-system-aarch64 (software emulation), in the foreground: this script
# becomes qemu. Like a Pi's boot firmware, it reads config.txt on the FAT
# partition and takes the kernel, the initramfs, cmdline.txt and (for the
# Pi 3) the device tree from there.
#
# Usage: image/qemu/boot.sh --machine virt|raspi3b --card FILE --state DIR
#            [--https PORT] [--http PORT] [--status PORT]
#            [--host-service PORT]...
#
#   --machine virt     qemu's generic arm64 board: Cortex-A53, 1 GiB,
#                      virtio disk (vda), network and random numbers
#   --machine raspi3b  qemu's Raspberry Pi 3 B with Debian's Pi 3 DTB: the
#                      card on its SD host (mmcblk0), network through a USB
#                      network device; its card's size must be a power of 2.
#                      Needs fdtput (device-tree-compiler) to apply what
#                      config.txt's dtoverlay=disable-bt changes
#   --card FILE        the card: a copy of pi-failover.img, usually grown
#                      (truncate -s 256M), as a real card is larger than
#                      the image. qemu writes to it.
#   --state DIR        created; gets qemu.pid, console.log (the serial
#                      console), console.sock (type into the console:
#                      socat - UNIX-CONNECT:DIR/console.sock) and boot/
#   --https/--http/--status PORT
#                      forward 127.0.0.1:PORT to the guest's 443, 80 and
#                      8080 (the status page)
#   --host-service PORT
#                      the guest reaches 127.0.0.1:PORT of this machine at
#                      10.0.2.100:PORT (the test's S3 server)
#
# The guest's network is qemu's user-mode network with restrict=on: it
# reaches nothing but the forwarded host services (a socat per connection)
# and qemu's DHCP; nothing it sends leaves this machine. The guest powers
# off instead of rebooting (-no-reboot), and so does qemu.
set -euo pipefail

# shellcheck source=image/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GUEST_SERVICE_ADDR=10.0.2.100
FAT_OFFSET=4M
# The Bluetooth chip on the Pi 3's PL011, in the upstream device tree.
PL011_BLUETOOTH=/soc/serial@7e201000/bluetooth

machine=''
card=''
state=''
forwards=()
services=()
while [ $# -gt 0 ]; do
	case "$1" in
	--machine) machine=${2:?}; shift 2 ;;
	--card) card=${2:?}; shift 2 ;;
	--state) state=${2:?}; shift 2 ;;
	--https) forwards+=("${2:?}:443"); shift 2 ;;
	--http) forwards+=("${2:?}:80"); shift 2 ;;
	--status) forwards+=("${2:?}:8080"); shift 2 ;;
	--host-service) services+=("${2:?}"); shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done
case "$machine" in
virt|raspi3b) ;;
*) die "--machine virt or --machine raspi3b (see --help)" ;;
esac
[ -f "$card" ] || die "--card $card does not exist"
[ -n "$state" ] || die "--state DIR is required"
need mcopy mtools
[ "${#services[@]}" -eq 0 ] || need socat socat
mapfile -t qemu < <(qemu_command)
[ "${#qemu[@]}" -gt 0 ] ||
	die "no qemu-system-aarch64: run image/qemu/fetch.sh (or apt-get install qemu-system-arm)"

mkdir -p "$state/boot"
rm -f "$state/qemu.pid" "$state/console.sock"
fat="$card@@$FAT_OFFSET"
fat_get() { # NAME: a file of the FAT partition into $state/boot/
	MTOOLS_SKIP_CHECK=1 mcopy -n -o -i "$fat" "::$1" "$state/boot/$1" ||
		die "cannot read $1 from the FAT partition of $card"
}
fat_get config.txt
fat_get cmdline.txt
# The firmware reads the last value of each key.
config() {
	sed -n "s/^[[:space:]]*$1[=[:space:]]\([^[:space:]#]*\).*/\1/p" "$state/boot/config.txt" | tail -n 1
}
kernel=$(config kernel)
initramfs=$(config initramfs)
dtb=$(config device_tree)
[ -n "$kernel" ] || die "config.txt names no kernel="
fat_get "$kernel"
args=(-kernel "$state/boot/$kernel" -append "$(tr -s '[:space:]' ' ' < "$state/boot/cmdline.txt")")
if [ -n "$initramfs" ]; then
	fat_get "$initramfs"
	args+=(-initrd "$state/boot/$initramfs")
fi

netdev="user,id=net0,restrict=on,ipv6=off"
for f in "${forwards[@]}"; do
	netdev+=",hostfwd=tcp:127.0.0.1:${f%%:*}-:${f##*:}"
done
for p in "${services[@]}"; do
	netdev+=",guestfwd=tcp:$GUEST_SERVICE_ADDR:$p-cmd:socat STDIO TCP:127.0.0.1:$p"
done

case "$machine" in
virt)
	args+=(
		-M virt -cpu cortex-a53 -smp 1 -m 1G
		-drive "if=none,id=card,format=raw,file=$card"
		-device "virtio-blk-device,drive=card"
		-netdev "$netdev" -device "virtio-net-device,netdev=net0"
		-device virtio-rng-device
	)
	;;
raspi3b)
	[ -n "$dtb" ] || die "config.txt names no device_tree= (the Pi 3 DTB)"
	fat_get "$dtb"
	# The firmware applies config.txt's dtoverlay=disable-bt (or the older
	# miniuart-bt): the PL011 (ttyAMA0, the serial console) no longer drives
	# the Bluetooth chip, which would take its input. qemu has no firmware:
	# do that part.
	if grep -qE '^[[:space:]]*dtoverlay=(disable-bt|miniuart-bt)' "$state/boot/config.txt"; then
		need fdtput device-tree-compiler
		fdtput -t s "$state/boot/$dtb" "$PL011_BLUETOOTH" status disabled ||
			die "cannot disable $PL011_BLUETOOTH in $dtb"
	fi
	size=$(stat -c %s "$card")
	[ $((size & (size - 1))) -eq 0 ] ||
		die "raspi3b needs a card whose size is a power of 2: truncate -s 256M $card"
	args+=(
		-M raspi3b -dtb "$state/boot/$dtb"
		-drive "if=sd,format=raw,file=$card"
		-usb -netdev "$netdev" -device "usb-net,netdev=net0"
	)
	;;
esac

args+=(
	-no-reboot -display none -monitor none
	-chardev "socket,id=console,path=$state/console.sock,server=on,wait=off,logfile=$state/console.log"
	-serial chardev:console
	-pidfile "$state/qemu.pid"
)
exec "${qemu[@]}" "${args[@]}"
