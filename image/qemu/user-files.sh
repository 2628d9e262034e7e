#!/usr/bin/env bash
# Puts the user's files on the FAT partition of an SD-card image, as a user
# does on any computer before shipping the Pi (image/boot/README-FIRST.txt):
# the config, the certificate, its key and the S3 credentials, under the
# names the card's README gives them. With mtools, without root or a mount.
#
# Usage: image/qemu/user-files.sh IMAGE --config FILE
#            [--cert FILE] [--key FILE] [--credentials FILE]
#            [--console-password FILE] [--file FILE]...
#
#   IMAGE               an image from image/mkimage.sh (its FAT partition
#                       starts at 4 MiB), or a card written from one
#   --config FILE       becomes pi-failover.toml
#   --cert FILE         becomes fullchain.pem
#   --key FILE          becomes privkey.pem
#   --credentials FILE  becomes aws-credentials
#   --console-password FILE
#                       becomes console-password: a crypt hash (openssl
#                       passwd -6) that unlocks root on the serial console
#   --file FILE         any other file the config names, under its own name
#
# pi-failover.toml names the other files; relative names are relative to
# it. Check it first: pi-failover check-config FILE.
set -euo pipefail

die() {
	echo "user-files: $*" >&2
	exit 1
}

# The FAT partition's offset, image/genimage.cfg's layout.
FAT_OFFSET=4M

image=''
files=()
while [ $# -gt 0 ]; do
	case "$1" in
	--config) files+=("${2:?--config needs a file}=pi-failover.toml"); shift 2 ;;
	--cert) files+=("${2:?--cert needs a file}=fullchain.pem"); shift 2 ;;
	--key) files+=("${2:?--key needs a file}=privkey.pem"); shift 2 ;;
	--credentials) files+=("${2:?--credentials needs a file}=aws-credentials"); shift 2 ;;
	--console-password) files+=("${2:?--console-password needs a file}=console-password"); shift 2 ;;
	--file) files+=("${2:?--file needs a file}=$(basename "${2}")"); shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) [ -z "$image" ] || die "one image only"; image=$1; shift ;;
	esac
done
[ -n "$image" ] || die "no image given (see --help)"
[ -f "$image" ] || die "$image does not exist"
[ "${#files[@]}" -gt 0 ] || die "no files given (see --help)"
command -v mcopy >/dev/null || die "mcopy not found: apt-get install mtools"

fat="$image@@$FAT_OFFSET"
MTOOLS_SKIP_CHECK=1 mdir -i "$fat" ::README-FIRST.txt >/dev/null 2>&1 ||
	die "$image has no pi-failover FAT partition at $FAT_OFFSET"
for pair in "${files[@]}"; do
	src=${pair%=*}
	name=${pair##*=}
	[ -f "$src" ] || die "$src does not exist"
	MTOOLS_SKIP_CHECK=1 mcopy -o -i "$fat" "$src" "::$name"
	echo "user-files: $src -> $name"
done
