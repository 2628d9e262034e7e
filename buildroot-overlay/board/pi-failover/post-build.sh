#!/bin/sh
#
# Buildroot post-build script of the pi-failover boards: runs after the
# packages are installed and the rootfs overlay is copied, with the target
# directory as $1. Buildroot exports HOST_DIR and BR2_EXTERNAL_PIFAILOVER_PATH.

set -eu

TARGET_DIR=$1
REPO=$(cd "$BR2_EXTERNAL_PIFAILOVER_PATH/.." && pwd)
# shellcheck source=buildroot-overlay/board/pi-failover/build-config.sh
. "$BR2_EXTERNAL_PIFAILOVER_PATH/board/pi-failover/build-config.sh"

# Mount points on the read-only root (see /etc/fstab).
mkdir -p "$TARGET_DIR/boot" "$TARGET_DIR/data"

# BusyBox init runs the appliance and the watchdog feeder (both installed
# by package/pi-failover) and starts them again whenever they exit.
inittab=$TARGET_DIR/etc/inittab
add_inittab() {
	grep -qxF "$1" "$inittab" || printf '%s\n' "$1" >> "$inittab"
}
add_inittab '# pi-failover: the appliance, and the watchdog feeder that checks it'
add_inittab '::respawn:/usr/libexec/pi-failover/run'
add_inittab '::respawn:/usr/libexec/pi-failover/watchdog'
add_inittab '# wired networking: waits for a NIC that registers late, keeps DHCP running'
add_inittab '::respawn:/usr/libexec/pi-failover/network'
add_inittab '# the clock: the time from HTTPS when NTP is blocked (pi-failover clock watch)'
add_inittab '::respawn:/usr/libexec/pi-failover/clock-watch'
add_inittab '# updates: RAUC installs signed bundles into the other slot (as root)'
add_inittab '::respawn:/usr/libexec/pi-failover/rauc-service'

# What is on the card, and the earliest time the clock may show
# (/etc/init.d/S05clock).
version=$PI_FAILOVER_VERSION
commit=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
epoch=${SOURCE_DATE_EPOCH:-$(date +%s)}
printf 'VERSION=%s\nGIT=%s\nBUILD_EPOCH=%s\n' "$version" "$commit" "$epoch" \
	> "$TARGET_DIR/etc/pi-failover-build"
cat > "$TARGET_DIR/usr/lib/os-release" <<OSRELEASE
NAME="pi-failover"
ID=pi-failover
ID_LIKE=buildroot
VERSION="$version ($commit)"
VERSION_ID=$version
PRETTY_NAME="pi-failover $version"
BUILD_ID=$commit
OSRELEASE

# Updates (RAUC, docs/user-guide.md "Updating a Pi you cannot reach"): the
# slots of image/README.md, RAUC's U-Boot boot counting, bundles for this
# board only, signed by the owner's key (the keyring named by
# BR2_PACKAGE_PI_FAILOVER_UPDATE_KEYRING in the build's configuration).
keyring=$(config_value BR2_PACKAGE_PI_FAILOVER_UPDATE_KEYRING)
if [ -z "$keyring" ] || [ ! -f "$keyring" ]; then
	echo "post-build: BR2_PACKAGE_PI_FAILOVER_UPDATE_KEYRING names no file ('$keyring'): make a signing key and name its certificate there (docs/user-guide.md, \"Updating a Pi you cannot reach\")" >&2
	exit 1
fi
mkdir -p "$TARGET_DIR/etc/rauc"
install -m 0644 "$keyring" "$TARGET_DIR/etc/rauc/keyring.pem"
cat > "$TARGET_DIR/etc/rauc/system.conf" <<SYSTEMCONF
# RAUC: the slots of the pi-failover card (image/README.md, "Slots").
# Written by board/pi-failover/post-build.sh.
[system]
compatible=$PI_FAILOVER_COMPATIBLE
bootloader=uboot
# The tries a slot gets when marked good or newly installed (image/boot.cmd).
boot-attempts=3
# Only verity bundles: each block checked against the signed root hash as
# it is read, so a bundle changed after its check cannot be installed.
bundle-formats=-plain
# Installation records and each slot's status, on the data partition.
data-directory=/data/rauc
# Where bundles and slots are mounted while installing: the root is
# read-only, /run is not.
mountprefix=/run/rauc

[keyring]
path=/etc/rauc/keyring.pem

[slot.rootfs.0]
device=/dev/disk/by-partuuid/5049f0a1-03
type=raw
bootname=A

[slot.rootfs.1]
device=/dev/disk/by-partuuid/5049f0a1-06
type=raw
bootname=B

[slot.kernel.0]
device=/dev/disk/by-partuuid/5049f0a1-02
type=raw
parent=rootfs.0

[slot.kernel.1]
device=/dev/disk/by-partuuid/5049f0a1-05
type=raw
parent=rootfs.1
SYSTEMCONF

# Kernel modules the appliance never loads: the Raspberry Pi kernel
# configuration builds hundreds (sound, cameras, displays, radios, other
# filesystems), and the image must stay within 64 MiB. Networking (wired,
# USB, Broadcom Wi-Fi), storage, USB, HID, I2C, GPIO, LEDs, RTCs and
# hardware monitoring stay.
for kdir in "$TARGET_DIR"/lib/modules/*/; do
	[ -d "$kdir/kernel" ] || continue
	before=$(du -sk "$kdir" | cut -f1)
	for d in sound drivers/media drivers/gpu drivers/staging \
		drivers/bluetooth net/bluetooth drivers/iio drivers/w1 \
		drivers/input/joystick drivers/input/touchscreen drivers/input/misc \
		drivers/net/can net/can drivers/net/ieee802154 net/ieee802154 \
		net/mac802154 net/6lowpan drivers/net/hamradio net/ax25 net/netrom \
		net/rose drivers/atm net/atm drivers/isdn drivers/usb/gadget \
		drivers/md drivers/mtd fs/nfsd fs/ocfs2 fs/gfs2 fs/btrfs fs/xfs \
		fs/jfs fs/reiserfs fs/nilfs2 fs/udf fs/ntfs3 fs/hfs fs/hfsplus \
		fs/ceph fs/smb fs/cifs fs/9p fs/ubifs fs/jffs2; do
		rm -rf "${kdir}kernel/$d"
	done
	for d in "${kdir}"kernel/drivers/net/wireless/*; do
		[ "${d##*/}" = broadcom ] || rm -rf "$d"
	done
	kver=$(basename "$kdir")
	if [ -x "$HOST_DIR/sbin/depmod" ]; then
		"$HOST_DIR/sbin/depmod" -a -b "$TARGET_DIR" "$kver"
	fi
	echo "post-build: kernel modules $kver: ${before} KiB -> $(du -sk "$kdir" | cut -f1) KiB"
done
