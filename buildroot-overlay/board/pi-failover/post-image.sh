#!/usr/bin/env bash
#
# Buildroot post-image script of the pi-failover boards: collects what the
# Raspberry Pi boots from and hands it to image/mkimage.sh, which writes
# $BINARIES_DIR/pi-failover.img with the layout shared with the qemu boot
# test (image/genimage.cfg):
#
#   boot (FAT p1)     rpi-firmware with config.txt, cmdline.txt and
#                     overlays/; the DTBs; U-Boot (u-boot.bin, which
#                     config.txt boots with kernel=); mkimage.sh adds
#                     boot.scr, compiled from image/boot.cmd
#   kernel (FAT p2)   slot A's kernel, Image.gz, which boot.scr loads
#   root (p3)         rootfs.squashfs
#
# Then, when the build's configuration names the owner's signing key
# (BR2_PACKAGE_PI_FAILOVER_UPDATE_SIGNING_KEY), the update bundle of the
# same kernel partition and root, next to the image:
# pi-failover-VERSION-BOARD.raucb (image/bundle.sh).

set -euo pipefail

: "${BINARIES_DIR:?run by Buildroot}" "${BUILD_DIR:?run by Buildroot}" "${HOST_DIR:?run by Buildroot}"
REPO=$(cd "$BR2_EXTERNAL_PIFAILOVER_PATH/.." && pwd)

boot=$BUILD_DIR/pi-failover-boot
kernel=$BUILD_DIR/pi-failover-kernel
rm -rf "$boot" "$kernel"
mkdir -p "$boot" "$kernel"
cp -R "$BINARIES_DIR/rpi-firmware/." "$boot/"
cp "$BINARIES_DIR"/*.dtb "$boot/"
# What the firmware starts: U-Boot, never the kernel itself.
firmware_kernel=$(sed -n 's/^kernel=\([^[:space:]#]*\).*/\1/p' "$boot/config.txt" | tail -n 1)
[ "$firmware_kernel" = u-boot.bin ] ||
	{ echo "post-image: config.txt must say kernel=u-boot.bin, not '$firmware_kernel'" >&2; exit 1; }
cp "$BINARIES_DIR/u-boot.bin" "$boot/"
cp "$BINARIES_DIR/Image.gz" "$kernel/"

"$REPO/image/mkimage.sh" \
	--boot "$boot" \
	--kernel "$kernel" \
	--rootfs "$BINARIES_DIR/rootfs.squashfs" \
	--out "$BINARIES_DIR" \
	--work "$BUILD_DIR/pi-failover-genimage"

# shellcheck source=buildroot-overlay/board/pi-failover/build-config.sh
. "$BR2_EXTERNAL_PIFAILOVER_PATH/board/pi-failover/build-config.sh"
signing_key=$(config_value BR2_PACKAGE_PI_FAILOVER_UPDATE_SIGNING_KEY)
if [ -z "$signing_key" ]; then
	echo "post-image: no BR2_PACKAGE_PI_FAILOVER_UPDATE_SIGNING_KEY: no update bundle (the image alone)"
	exit 0
fi
keyring=$(config_value BR2_PACKAGE_PI_FAILOVER_UPDATE_KEYRING)
version=$PI_FAILOVER_VERSION
board=$PI_FAILOVER_BOARD
PATH=$HOST_DIR/bin:$PATH exec "$REPO/image/bundle.sh" \
	--kernel "$BINARIES_DIR/kernel.vfat" \
	--rootfs "$BINARIES_DIR/rootfs.squashfs" \
	--compatible "$PI_FAILOVER_COMPATIBLE" \
	--version "$version" \
	--cert "$keyring" \
	--key "$signing_key" \
	--keyring "$keyring" \
	--out "$BINARIES_DIR/pi-failover-$version-$board.raucb"
