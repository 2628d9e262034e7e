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

set -euo pipefail

: "${BINARIES_DIR:?run by Buildroot}" "${BUILD_DIR:?run by Buildroot}"
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

exec "$REPO/image/mkimage.sh" \
	--boot "$boot" \
	--kernel "$kernel" \
	--rootfs "$BINARIES_DIR/rootfs.squashfs" \
	--out "$BINARIES_DIR" \
	--work "$BUILD_DIR/pi-failover-genimage"
