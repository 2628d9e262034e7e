#!/usr/bin/env bash
# Assemble the pi-failover SD-card image from a build's boot files and root
# filesystem, with the one layout in image/genimage.cfg. The Buildroot
# build (buildroot-overlay/board/pi-failover/post-image.sh) and the qemu
# boot test both call this.
#
# Usage: image/mkimage.sh --boot DIR --kernel DIR --rootfs FILE --out DIR [--work DIR]
#
#   --boot DIR     the build's files for the FAT partition, copied as they
#                  are: firmware, U-Boot, DTBs, overlays/, config.txt,
#                  cmdline.txt (both required; cmdline.txt without root=,
#                  which the boot script adds for the slot it boots)
#   --kernel DIR   slot A's kernel partition: Image.gz (required), and
#                  initrd.img if the kernel needs one
#   --rootfs FILE  slot A's root filesystem, a squashfs image
#   --out DIR      where pi-failover.img is written
#   --work DIR     scratch directory, emptied first (default: a temporary
#                  directory, removed at the end)
#
# Every image also gets, on its FAT partition, the boot script boot.scr
# (compiled from image/boot.cmd) and the files the user starts from:
# pi-failover.toml (examples/pi-failover.toml) and README-FIRST.txt
# (image/boot/); and at 1 MiB the boot state (slot A first, 3 tries for
# each slot). Needs genimage, mkdosfs (dosfstools), mcopy (mtools), and
# mkimage and mkenvimage (u-boot-tools). Fails if the image is larger than
# 64 MiB.
set -euo pipefail

LIMIT=$((64 * 1024 * 1024))

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

die() {
	echo "mkimage: $*" >&2
	exit 1
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

boot=''
kernel_dir=''
rootfs=''
out=''
work=''
while [ $# -gt 0 ]; do
	case "$1" in
	--boot) boot=${2:?--boot needs a directory}; shift 2 ;;
	--kernel) kernel_dir=${2:?--kernel needs a directory}; shift 2 ;;
	--rootfs) rootfs=${2:?--rootfs needs a file}; shift 2 ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--work) work=${2:?--work needs a directory}; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
if [ -z "$boot" ] || [ -z "$kernel_dir" ] || [ -z "$rootfs" ] || [ -z "$out" ]; then
	usage >&2
	exit 2
fi

[ -d "$boot" ] || die "--boot $boot is not a directory"
for f in config.txt cmdline.txt; do
	[ -f "$boot/$f" ] || die "$boot has no $f"
done
kernel=$(sed -n 's/^[[:space:]]*kernel=\([^[:space:]#]*\).*/\1/p' "$boot/config.txt" | tail -n 1)
if [ -n "$kernel" ] && [ ! -f "$boot/$kernel" ]; then
	die "config.txt boots kernel=$kernel, which is not in $boot"
fi
[ -d "$kernel_dir" ] || die "--kernel $kernel_dir is not a directory"
[ -f "$kernel_dir/Image.gz" ] || die "$kernel_dir has no Image.gz (the boot script loads slot A's kernel under that name)"
[ -f "$rootfs" ] || die "--rootfs $rootfs does not exist"
for tool in genimage mkdosfs mcopy mkimage mkenvimage; do
	command -v "$tool" >/dev/null ||
		die "$tool not found (packages genimage, dosfstools, mtools, u-boot-tools)"
done

# The boot script gives the kernel its root, by slot: a root= in
# cmdline.txt would name one slot for both.
if grep -Eq '(^|[[:space:]])root=' "$boot/cmdline.txt"; then
	die "cmdline.txt says root=: leave it out, the boot script (image/boot.cmd) adds the root of the slot it boots"
fi
sig=$(sed -n 's/^[[:space:]]*disk-signature[[:space:]]*=[[:space:]]*0x\([0-9a-fA-F]*\).*/\1/p' \
	"$here/genimage.cfg")
if ! grep -q "root=PARTUUID=${sig}-\${root_part}" "$here/boot.cmd"; then
	die "image/boot.cmd does not boot root=PARTUUID=${sig}-\${root_part} (the disk signature in image/genimage.cfg)"
fi

if [ -z "$work" ]; then
	work=$(mktemp -d "${TMPDIR:-/tmp}/pi-failover-image.XXXXXX")
	trap 'rm -rf "$work"' EXIT
fi
rm -rf "$work"
mkdir -p "$work/root/boot" "$work/root/kernel" "$work/input" "$work/tmp" "$out"

cp -R "$boot/." "$work/root/boot/"
cp -R "$kernel_dir/." "$work/root/kernel/"
cp "$repo/examples/pi-failover.toml" "$work/root/boot/pi-failover.toml"
cp "$here/boot/README-FIRST.txt" "$work/root/boot/README-FIRST.txt"
mkimage -A arm64 -O linux -T script -C none -n "pi-failover boot" \
	-d "$here/boot.cmd" "$work/root/boot/boot.scr" >/dev/null
ln -s "$(cd "$(dirname "$rootfs")" && pwd)/$(basename "$rootfs")" "$work/input/rootfs.squashfs"
# A new card boots slot A; slot B is tried only when A has used its tries.
printf 'BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n' |
	mkenvimage -s 0x4000 -o "$work/input/boot-state.env" -

genimage \
	--config "$here/genimage.cfg" \
	--rootpath "$work/root" \
	--tmppath "$work/tmp" \
	--inputpath "$work/input" \
	--outputpath "$out"

img=$out/pi-failover.img
echo "mkimage: $out/kernel.vfat: slot A's kernel partition, for update bundles (image/bundle.sh)"
size=$(stat -c %s "$img")
echo "mkimage: $img: $((size / 1024 / 1024)) MiB ($size bytes)"
if [ "$size" -gt "$LIMIT" ]; then
	die "$img is larger than 64 MiB: shrink the root filesystem (or the boot partition in image/genimage.cfg)"
fi
