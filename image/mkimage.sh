#!/usr/bin/env bash
# Assemble the pi-failover SD-card image from a build's boot files and root
# filesystem, with the one layout in image/genimage.cfg. The Buildroot
# build (buildroot-overlay/board/pi-failover/post-image.sh) and the qemu
# boot test both call this.
#
# Usage: image/mkimage.sh --boot DIR --rootfs FILE --out DIR [--work DIR]
#
#   --boot DIR     the build's files for the FAT partition, copied as they
#                  are: firmware, kernel, DTBs, overlays/, config.txt,
#                  cmdline.txt (both required)
#   --rootfs FILE  the root filesystem, a squashfs image
#   --out DIR      where pi-failover.img is written
#   --work DIR     scratch directory, emptied first (default: a temporary
#                  directory, removed at the end)
#
# Every image also gets, on its FAT partition, the files the user starts
# from: pi-failover.toml (examples/pi-failover.toml) and README-FIRST.txt
# (image/boot/). Needs genimage, mkdosfs (dosfstools) and mcopy (mtools).
# Fails if the image is larger than 64 MiB.
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
rootfs=''
out=''
work=''
while [ $# -gt 0 ]; do
	case "$1" in
	--boot) boot=${2:?--boot needs a directory}; shift 2 ;;
	--rootfs) rootfs=${2:?--rootfs needs a file}; shift 2 ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--work) work=${2:?--work needs a directory}; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
if [ -z "$boot" ] || [ -z "$rootfs" ] || [ -z "$out" ]; then
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
[ -f "$rootfs" ] || die "--rootfs $rootfs does not exist"
for tool in genimage mkdosfs mcopy; do
	command -v "$tool" >/dev/null || die "$tool not found (packages genimage, dosfstools, mtools)"
done

# The kernel finds its root by the disk signature genimage writes.
sig=$(sed -n 's/^[[:space:]]*disk-signature[[:space:]]*=[[:space:]]*0x\([0-9a-fA-F]*\).*/\1/p' \
	"$here/genimage.cfg")
if ! grep -Eq "(^|[[:space:]])root=PARTUUID=${sig}-02([[:space:]]|$)" "$boot/cmdline.txt"; then
	die "cmdline.txt does not say root=PARTUUID=${sig}-02 (the disk signature in image/genimage.cfg)"
fi

if [ -z "$work" ]; then
	work=$(mktemp -d "${TMPDIR:-/tmp}/pi-failover-image.XXXXXX")
	trap 'rm -rf "$work"' EXIT
fi
rm -rf "$work"
mkdir -p "$work/root/boot" "$work/input" "$work/tmp" "$out"

cp -R "$boot/." "$work/root/boot/"
cp "$repo/examples/pi-failover.toml" "$work/root/boot/pi-failover.toml"
cp "$here/boot/README-FIRST.txt" "$work/root/boot/README-FIRST.txt"
ln -s "$(cd "$(dirname "$rootfs")" && pwd)/$(basename "$rootfs")" "$work/input/rootfs.squashfs"

genimage \
	--config "$here/genimage.cfg" \
	--rootpath "$work/root" \
	--tmppath "$work/tmp" \
	--inputpath "$work/input" \
	--outputpath "$out"

img=$out/pi-failover.img
size=$(stat -c %s "$img")
echo "mkimage: $img: $((size / 1024 / 1024)) MiB ($size bytes)"
if [ "$size" -gt "$LIMIT" ]; then
	die "$img is larger than 64 MiB: shrink the root filesystem (or the boot partition in image/genimage.cfg)"
fi
