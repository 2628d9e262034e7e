#!/usr/bin/env bash
# Makes a RAUC update bundle for pi-failover's slots (image/README.md,
# "Slots"), signed by the owner's key: the same kernel partition and root
# filesystem the SD image carries as slot A, installed by RAUC into the
# slot that is not booted.
#
# Usage: image/bundle.sh --kernel FILE --rootfs FILE --compatible NAME
#            --version VERSION --cert FILE --key FILE [--keyring FILE]
#            --out FILE
#
#   --kernel FILE      the kernel partition image (kernel.vfat, written by
#                      image/mkimage.sh next to pi-failover.img)
#   --rootfs FILE      the root filesystem (squashfs)
#   --compatible NAME  the boards it is for: /etc/rauc/system.conf's
#                      compatible, pi-failover-<board> (rpi3-64, rpi4-64,
#                      rpi5-64); RAUC refuses a bundle for another
#   --version VERSION  the appliance's version it carries
#   --cert, --key      the owner's signing certificate and key (PEM)
#   --keyring FILE     if given, the bundle is checked against it once made
#                      (the keyring the image carries)
#   --out FILE         the bundle (.raucb), replaced if it exists
#
# A verity bundle (RAUC's [bundle] format=verity): the Pi checks every
# block against the signed root hash as it reads it. Needs rauc (the host's
# Debian package, or Buildroot's host-rauc).
set -euo pipefail

die() {
	echo "bundle: $*" >&2
	exit 1
}

kernel='' rootfs='' compatible='' version='' cert='' key='' keyring='' out=''
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kernel=${2:?}; shift 2 ;;
	--rootfs) rootfs=${2:?}; shift 2 ;;
	--compatible) compatible=${2:?}; shift 2 ;;
	--version) version=${2:?}; shift 2 ;;
	--cert) cert=${2:?}; shift 2 ;;
	--key) key=${2:?}; shift 2 ;;
	--keyring) keyring=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done
for v in kernel rootfs compatible version cert key out; do
	[ -n "${!v}" ] || die "--$v is required (see --help)"
done
for f in "$kernel" "$rootfs" "$cert" "$key"; do
	[ -f "$f" ] || die "$f does not exist"
done
command -v rauc >/dev/null || die "rauc not found (apt-get install rauc, or Buildroot's host-rauc)"

content=$(mktemp -d "${TMPDIR:-/tmp}/pi-failover-bundle.XXXXXX")
trap 'rm -rf "$content"' EXIT
cp "$kernel" "$content/kernel.vfat"
cp "$rootfs" "$content/rootfs.squashfs"
cat > "$content/manifest.raucm" <<MANIFEST
[update]
compatible=$compatible
version=$version

[bundle]
format=verity

[image.kernel]
filename=kernel.vfat

[image.rootfs]
filename=rootfs.squashfs
MANIFEST

rm -f "$out"
if ! log=$(rauc bundle --cert "$cert" --key "$key" "$content" "$out" 2>&1); then
	die "rauc bundle failed: $log"
fi
if [ -n "$keyring" ] && ! log=$(rauc info --keyring "$keyring" "$out" 2>&1); then
	die "$out does not verify against $keyring (is --cert the keyring's?): $log"
fi
echo "bundle: $out: $compatible $version ($(stat -c %s "$out") bytes)"
