#!/usr/bin/env bash
#
# Buildroot post-image script of the pi-failover boards: collects what the
# Raspberry Pi boots from (rpi-firmware with config.txt, cmdline.txt and
# overlays; the DTBs; the kernel config.txt names) and hands it to
# image/mkimage.sh, which writes $BINARIES_DIR/pi-failover.img with the
# layout shared with the qemu boot test (image/genimage.cfg).

set -euo pipefail

: "${BINARIES_DIR:?run by Buildroot}" "${BUILD_DIR:?run by Buildroot}"
REPO=$(cd "$BR2_EXTERNAL_PIFAILOVER_PATH/.." && pwd)

boot=$BUILD_DIR/pi-failover-boot
rm -rf "$boot"
mkdir -p "$boot"
cp -R "$BINARIES_DIR/rpi-firmware/." "$boot/"
cp "$BINARIES_DIR"/*.dtb "$boot/"
kernel=$(sed -n 's/^kernel=\([^[:space:]#]*\).*/\1/p' "$boot/config.txt" | tail -n 1)
cp "$BINARIES_DIR/${kernel:?config.txt names no kernel}" "$boot/"

exec "$REPO/image/mkimage.sh" \
	--boot "$boot" \
	--rootfs "$BINARIES_DIR/rootfs.squashfs" \
	--out "$BINARIES_DIR" \
	--work "$BUILD_DIR/pi-failover-genimage"
