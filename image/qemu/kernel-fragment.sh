#!/usr/bin/env bash
# Checks the board's kernel fragment against a real 6.12 configuration, as
# far as can be done without building the Raspberry Pi kernel: Debian's
# arm64 config of the same series, merged with the fragment the way
# Buildroot merges it (merge_config.sh -m: the fragment's lines replace the
# base's), resolved by the 6.12 Kconfig tree (olddefconfig), then checked
# with board/pi-failover/kernel-config-check.sh, the script the Buildroot
# build runs. A fragment line whose option 6.12 no longer has, or whose
# dependencies an arm64 6.12 config cannot meet, is named and fails.
#
# To show the check can fail, the same merge is run once more with a line no
# kernel knows (CONFIG_PI_FAILOVER_NO_SUCH_OPTION=y): it must be named lost.
#
# Usage: image/qemu/kernel-fragment.sh [FRAGMENT]
#        (default: buildroot-overlay/board/pi-failover/linux.fragment)
#
# Downloads, once, with the private apt state of lib.sh (about 160 MB, kept
# under kconfig/ in the work directory; the source package is deleted once
# its Kconfig files are out): linux-source-6.12 (the Kconfig tree),
# linux-config-6.12 (Debian's configs) and linux-kbuild-6.12.* (Kconfig's
# `conf`, built for this machine), all of the version linux-image-6.12-arm64
# depends on today. Needs an aarch64 cross gcc for Kconfig's compiler tests
# (gcc-aarch64-linux-gnu) and xz.
set -euo pipefail

# shellcheck source=image/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fragment=${1:-$repo/buildroot-overlay/board/pi-failover/linux.fragment}
check=$repo/buildroot-overlay/board/pi-failover/kernel-config-check.sh
case "$fragment" in
-h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
esac
[ -r "$fragment" ] || die "cannot read $fragment"

need apt-get apt
need dpkg-deb dpkg
need xz xz-utils
need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu

private_apt_lists 0
image=$(kernel_package)
[ -n "$image" ] || die "no linux-image-$KERNEL_SERIES-arm64 in the package lists"
abi=${image#linux-image-}
abi=${abi%-arm64}
version=$(private_apt_cache show "$image" | sed -n 's/^Version: //p' | head -n 1)
[ -n "$version" ] || die "no version for $image"

kc=$work/kconfig
tree=$kc/linux-source-$KERNEL_SERIES
if [ "$(cat "$kc/complete" 2>/dev/null)" != "$version" ]; then
	note "downloading the $KERNEL_SERIES Kconfig tree, Debian's configs and conf ($version)"
	rm -rf "$kc"
	mkdir -p "$kc/debs" "$kc/kbuild"
	(cd "$kc/debs" && private_apt_get download "linux-source-$KERNEL_SERIES=$version" \
		"linux-config-$KERNEL_SERIES=$version" "linux-kbuild-$abi:$(host_arch)=$version" >/dev/null) ||
		die "cannot download the kernel's source, configs or kbuild $version"
	# Only what Kconfig reads: every Kconfig file, and scripts/ for the shell
	# functions its macros call (compiler and linker versions, rustc).
	dpkg-deb --fsys-tarfile "$kc"/debs/linux-source-*.deb |
		tar -xO --wildcards "*/linux-source-$KERNEL_SERIES.tar.xz" |
		xz -dc | tar -x -C "$kc" --wildcards '*Kconfig*' "linux-source-$KERNEL_SERIES/scripts/*"
	dpkg-deb -x "$kc"/debs/linux-config-*.deb "$kc/config"
	dpkg-deb -x "$kc"/debs/linux-kbuild-*.deb "$kc/kbuild"
	rm -rf "$kc/debs"
	echo "$version" > "$kc/complete"
fi
conf=$(find "$kc/kbuild" -path '*/scripts/kconfig/conf' -type f | head -n 1)
base=$(find "$kc/config" -name 'config.arm64_none_arm64.xz' | head -n 1)
[ -x "$conf" ] || die "no scripts/kconfig/conf in linux-kbuild-$abi"
[ -n "$base" ] || die "no config.arm64_none_arm64.xz in linux-config-$KERNEL_SERIES"

# merge FRAGMENT OUT: Debian's config, the fragment's options replaced as
# merge_config.sh does, resolved by olddefconfig.
merge() {
	local frag=$1 out=$2 option
	xz -dc "$base" > "$out"
	while IFS= read -r option; do
		sed -i -e "/^$option=/d" -e "/^# $option is not set\$/d" "$out"
	done < <(sed -n 's/^\(# \)\{0,1\}\(CONFIG_[A-Za-z0-9_]*\)[= ].*/\2/p' "$frag")
	grep -E '^(CONFIG_|# CONFIG_)' "$frag" >> "$out"
	(cd "$tree" && KCONFIG_CONFIG=$out SRCARCH=arm64 ARCH=arm64 srctree=. \
		CC=aarch64-linux-gnu-gcc LD=aarch64-linux-gnu-ld HOSTCC=gcc HOSTCXX=g++ \
		KERNELVERSION="$KERNEL_SERIES" "$conf" --olddefconfig Kconfig >/dev/null)
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

merge "$fragment" "$scratch/config"
if ! "$check" "$fragment" -- "$scratch/config"; then
	die "${fragment##*/} does not survive a merge into Debian's arm64 $version config"
fi

{ cat "$fragment"; echo 'CONFIG_PI_FAILOVER_NO_SUCH_OPTION=y'; } > "$scratch/broken.fragment"
merge "$scratch/broken.fragment" "$scratch/broken.config"
if out=$("$check" "$scratch/broken.fragment" -- "$scratch/broken.config" 2>&1) ||
	! grep -q "CONFIG_PI_FAILOVER_NO_SUCH_OPTION=y' is lost" <<<"$out"; then
	die "the merge kept a line no kernel knows, or the check did not name it: $out"
fi
note "${fragment##*/}: every line survives into Debian's arm64 $version config (and an unknown one is named)"
