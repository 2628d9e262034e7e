#!/usr/bin/env bash
# Boots an SD card written from the qemu boot test's image under
# qemu-system-aarch64 (software emulation), in the foreground: this script
# becomes qemu. Like a Pi's boot firmware, it reads config.txt on the FAT
# partition and starts what it names (kernel=u-boot.bin: U-Boot), with (for
# the Pis) the device tree config.txt names. U-Boot runs the card's boot
# script (image/boot.cmd), which picks the slot and boots its kernel. On
# -M virt the U-Boot is Debian's qemu_arm64 build (qemu's board, not a
# Pi's); on the raspis, the card's own u-boot.bin (Debian's rpi_arm64).
#
# Usage: image/qemu/boot.sh --machine virt|raspi3b|raspi4b --card FILE
#            --state DIR [--late-nic] [--https PORT] [--http PORT]
#            [--status PORT] [--host-service PORT]...
#
#   --machine virt     qemu's generic arm64 board: Cortex-A53, 1 GiB,
#                      virtio disk (vda), network and random numbers
#   --machine raspi3b  qemu's Raspberry Pi 3 B with Debian's Pi 3 DTB: the
#                      card on its SD host (mmcblk0), network through a USB
#                      network device; its card's size must be a power of 2.
#                      Needs fdtput (device-tree-compiler) to apply what
#                      config.txt's dtoverlay=disable-bt changes
#   --machine raspi4b  qemu's Raspberry Pi 4 B (qemu 9.0 and later) with
#                      Debian's Pi 4 DTB, 2 GiB: the card on its first SD
#                      host (qemu has no emmc2; the DTB is changed to match,
#                      see raspi4b_dtb), network through a USB network
#                      device on the OTG controller (qemu has neither the
#                      PCIe xHCI nor GENET). A power-of-2 card, fdtput.
#   --late-nic         raspi3b/raspi4b: no NIC at power-on. Plug one in
#                      later, as a USB Ethernet chip that registers late:
#                      echo '{"execute":"qmp_capabilities"}
#                        {"execute":"device_add","arguments":{"driver":
#                        "usb-net","id":"nic","netdev":"net0",
#                        "mac":"b8:27:eb:00:00:01"}}' |
#                        socat - UNIX-CONNECT:DIR/qmp.sock
#   --card FILE        the card: a copy of pi-failover.img, usually grown
#                      (truncate -s 256M), as a real card is larger than
#                      the image. qemu writes to it.
#   --state DIR        created; gets qemu.pid, console.log (the serial
#                      console), console.sock (type into the console:
#                      socat - UNIX-CONNECT:DIR/console.sock), qmp.sock
#                      (qemu's machine protocol) and boot/. qemu 10 holds
#                      the console's output until a client reads
#                      console.sock: keep one connected.
#   --https/--http/--status PORT
#                      forward 127.0.0.1:PORT to the guest's 443, 80 and
#                      8080 (the status page)
#   --host-service PORT
#                      the guest reaches 127.0.0.1:PORT of this machine at
#                      10.0.2.100:PORT (the test's S3 server)
#
# The guest's network is qemu's user-mode network with restrict=on: it
# reaches nothing but the forwarded host services (a socat per connection)
# and qemu's DHCP and IPv6 router advertisements (2001:db8:1::/64; the
# forwards are IPv4, qemu takes no IPv6 address there); nothing it sends leaves this
# machine. The NIC has a Raspberry Pi MAC address (globally administered:
# cdc_ether names it eth0, as the boards' own chips are named). The guest
# powers off instead of rebooting (-no-reboot), and so does qemu.
set -euo pipefail

# shellcheck source=image/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GUEST_SERVICE_ADDR=10.0.2.100
GUEST_IPV6_NET=2001:db8:1::/64
FAT_OFFSET=4M
PI_MAC=b8:27:eb:00:00:01
# The Bluetooth chip on the Pi 3's and Pi 4's PL011, in the upstream device trees.
PL011_BLUETOOTH=/soc/serial@7e201000/bluetooth

machine=''
card=''
state=''
late_nic=0
forwards=()
services=()
while [ $# -gt 0 ]; do
	case "$1" in
	--machine) machine=${2:?}; shift 2 ;;
	--card) card=${2:?}; shift 2 ;;
	--state) state=${2:?}; shift 2 ;;
	--late-nic) late_nic=1; shift ;;
	--https) forwards+=("${2:?}:443"); shift 2 ;;
	--http) forwards+=("${2:?}:80"); shift 2 ;;
	--status) forwards+=("${2:?}:8080"); shift 2 ;;
	--host-service) services+=("${2:?}"); shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done
case "$machine" in
virt|raspi3b|raspi4b) ;;
*) die "--machine virt, raspi3b or raspi4b (see --help)" ;;
esac
[ "$late_nic" -eq 0 ] || [ "$machine" != virt ] || die "--late-nic is for raspi3b and raspi4b"

[ -f "$card" ] || die "--card $card does not exist"
[ -n "$state" ] || die "--state DIR is required"
need mcopy mtools
[ "${#services[@]}" -eq 0 ] || need socat socat
mapfile -t qemu < <(qemu_command)
[ "${#qemu[@]}" -gt 0 ] ||
	die "no qemu-system-aarch64: run image/qemu/fetch.sh (or apt-get install qemu-system-arm)"

mkdir -p "$state/boot"
rm -f "$state/qemu.pid" "$state/console.sock" "$state/qmp.sock"
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
dtb=$(config device_tree)
[ "$kernel" = u-boot.bin ] ||
	die "config.txt starts kernel=$kernel: this card does not boot through U-Boot (build it again: image/qemu/build.sh)"
args=()

# Both families said: qemu takes "ipv6=on" alone to mean IPv6 only, and the
# guest's DHCP requests then go unanswered. The IPv6 prefix is a global one
# (the documentation prefix), as a co-location's router advertises: qemu's
# default, fec0::/64, is site-local.
netdev="user,id=net0,restrict=on,ipv4=on,ipv6=on,ipv6-net=$GUEST_IPV6_NET"
for f in "${forwards[@]}"; do
	netdev+=",hostfwd=tcp:127.0.0.1:${f%%:*}-:${f##*:}"
done
for p in "${services[@]}"; do
	netdev+=",guestfwd=tcp:$GUEST_SERVICE_ADDR:$p-cmd:socat STDIO TCP:127.0.0.1:$p"
done

# The firmware applies config.txt's dtoverlay=disable-bt (or the older
# miniuart-bt): the PL011 (ttyAMA0, the serial console) no longer drives the
# Bluetooth chip, which would take its input, and it is the console U-Boot
# writes to (the Raspberry Pi device trees' stdout-path is serial0, which
# the overlay points at the PL011; upstream's says serial1, the mini UART).
# qemu has no firmware: do that part.
apply_disable_bt() { # DTB
	if grep -qE '^[[:space:]]*dtoverlay=(disable-bt|miniuart-bt)' "$state/boot/config.txt"; then
		if ! fdtput -t s "$1" "$PL011_BLUETOOTH" status disabled ||
			! fdtput -t s "$1" /chosen stdout-path serial0:115200n8; then
			die "cannot disable $PL011_BLUETOOTH in $1"
		fi
	fi
}

# qemu's raspi4b is not the whole board: one SD controller (the first,
# mmc@7e300000; the Pi 4 boots from emmc2, which qemu lacks), the OTG
# controller as the only USB, and no clocks, second interrupt controller,
# HDMI or their I2C. Upstream's DTB is changed to that: emmc2 off and the
# card on the first SDHCI (without the Wi-Fi chip's power sequence), the OTG
# port a host, and the devices qemu lacks disabled (their drivers would
# wait for them forever).
raspi4b_dtb() { # DTB
	local node
	fdtput -t s "$1" /emmc2bus/mmc@7e340000 status disabled &&
		fdtput -t s "$1" /soc/mmc@7e300000 status okay &&
		fdtput -d "$1" /soc/mmc@7e300000 mmc-pwrseq &&
		fdtput -t s "$1" /soc/usb@7e980000 dr_mode host || return 1
	for node in clock@7ef00000 interrupt-controller@7ef00100 hdmi@7ef00700 \
		i2c@7ef04500 hdmi@7ef05700 i2c@7ef09500; do
		fdtput -t s "$1" "/soc/$node" status disabled || return 1
	done
}

# raspi_args MACHINE: the Pis' common arguments.
raspi_args() {
	[ -n "$dtb" ] || die "config.txt names no device_tree= (the board's DTB)"
	need fdtput device-tree-compiler
	fat_get "$dtb"
	apply_disable_bt "$state/boot/$dtb"
	local size
	size=$(stat -c %s "$card")
	[ $((size & (size - 1))) -eq 0 ] ||
		die "$1 needs a card whose size is a power of 2: truncate -s 256M $card"
	fat_get "$kernel"
	args+=(-M "$1" -kernel "$state/boot/$kernel" -dtb "$state/boot/$dtb")
	args+=(-drive "if=sd,format=raw,file=$card" -usb -netdev "$netdev")
	if [ "$late_nic" -eq 0 ]; then
		args+=(-device "usb-net,id=nic,netdev=net0,mac=$PI_MAC")
	fi
}

case "$machine" in
virt)
	uboot=$work/debian/arm64/usr/lib/u-boot/qemu_arm64/u-boot.bin
	[ -f "$uboot" ] || die "no $uboot: run image/qemu/fetch.sh"
	args+=(
		-M virt -cpu cortex-a53 -smp 1 -m 1G -bios "$uboot"
		-drive "if=none,id=card,format=raw,file=$card"
		-device "virtio-blk-device,drive=card"
		-netdev "$netdev" -device "virtio-net-device,netdev=net0,mac=$PI_MAC"
		-device virtio-rng-device
	)
	;;
raspi3b)
	raspi_args raspi3b
	;;
raspi4b)
	raspi_args raspi4b
	raspi4b_dtb "$state/boot/$dtb" || die "cannot fit $dtb to qemu's raspi4b (fdtput)"
	;;
esac

args+=(
	-no-reboot -display none -monitor none
	-chardev "socket,id=console,path=$state/console.sock,server=on,wait=off,logfile=$state/console.log"
	-serial chardev:console
	-qmp "unix:$state/qmp.sock,server=on,wait=off"
	-pidfile "$state/qemu.pid"
)
exec "${qemu[@]}" "${args[@]}"
