#!/usr/bin/env bash
# Fetches the Debian pieces of the qemu boot test into the work directory
# (see lib.sh), once; later runs find them there. Nothing is installed
# system-wide: the packages are downloaded with a private apt state and
# unpacked with dpkg-deb.
#
# Usage: image/qemu/fetch.sh [--refresh] [--install-host-libs]
#
#   --refresh            update the package lists and download again (a
#                        new kernel ABI, a security update)
#   --install-host-libs  apt-get install the shared libraries the unpacked
#                        qemu-system-aarch64 needs, if some are missing
#                        (root; what .ci/run does)
#
# What it unpacks:
#   debian/arm64/  Debian's arm64 kernel of the Raspberry Pi kernel's series
#                  (KERNEL_SERIES, 6.12: linux-image-6.12-arm64's current
#                  ABI from the release's security or backports suite:
#                  Image, modules, the Pi 3 and Pi 4 DTBs), busybox-static,
#                  and what
#                  Buildroot's image has that this BusyBox lacks or that
#                  comes from other packages: util-linux's setpriv, partx
#                  and mountpoint, sfdisk, e2fsprogs, their shared libraries
#                  (glibc), CA certificates
#   debian/host/   busybox-static for this machine's architecture, the same
#                  version: its --list-full says where each applet goes
#   qemu/          qemu-system-aarch64 from <release>-backports'
#                  qemu-system-arm and qemu-system-data (10.0: the raspi4b
#                  machine arrived in 9.0; bookworm's own 7.2 lacks it),
#                  unless the one on PATH has raspi4b. Unpacked, not
#                  installed: installing it would replace the system's qemu
#                  packages.
set -euo pipefail

# shellcheck source=image/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ARM64_PACKAGES=(
	busybox-static
	util-linux libmount1 libselinux1 libpcre2-8-0 libcap-ng0 libblkid1 libsmartcols1 libuuid1
	fdisk libfdisk1 libreadline8 libtinfo6
	e2fsprogs libext2fs2 libcom-err2
	libc6
	ca-certificates
	u-boot-qemu u-boot-rpi
	libubootenv-tool libubootenv0.1 zlib1g
	rauc rauc-service libglib2.0-0 libjson-glib-1.0-0 libssl3 libffi8 libmount1
	libcurl3-gnutls libgnutls30 libnghttp2-14 libidn2-0 librtmp1 libssh2-1 libpsl5
	libgssapi-krb5-2 libldap-2.5-0 libzstd1 libbrotli1 libkrb5-3 libk5crypto3
	libkrb5support0 libkeyutils1 libsasl2-2 libunistring2 libtasn1-6 libnettle8
	libhogweed6 libgmp10 libp11-kit0 libgcrypt20 libgpg-error0
	dbus-daemon dbus-bin dbus-system-bus-common libdbus-1-3 libexpat1 libsystemd0
	libapparmor1 libaudit1 libcap2 liblz4-1 liblzma5
)

refresh=0
install_libs=0
while [ $# -gt 0 ]; do
	case "$1" in
	--refresh) refresh=1; shift ;;
	--install-host-libs) install_libs=1; shift ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

need apt-get apt
need dpkg-deb dpkg

# Missing shared libraries of the unpacked qemu, as the packages its .deb
# depends on (qemu-system-* left out: those are what we avoid installing).
qemu_missing_packages() {
	local bin=$work/qemu/usr/bin/qemu-system-aarch64 listed
	# ldd's output is read whole first: under pipefail, `ldd | grep -q` failed whenever grep
	# quit at the first match before ldd's last line (SIGPIPE), and read as "nothing missing".
	listed=$(ldd "$bin" 2>&1) || true
	if ! grep -q 'not found' <<<"$listed"; then
		return 0
	fi
	dpkg-deb -f "$work"/debs/qemu-system-arm_*.deb Depends |
		tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*//' -e 's/[[:space:]]//g' |
		grep -v '^qemu-' | grep -v '^$' | tr '\n' ' '
}

check_qemu() {
	path_qemu_will_do && return 0
	local missing
	missing=$(qemu_missing_packages)
	[ -z "$missing" ] && return 0
	if [ "$install_libs" -eq 1 ]; then
		note "installing qemu's shared libraries: $missing"
		# shellcheck disable=SC2086 # one package per word
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
		missing=$(qemu_missing_packages)
		[ -z "$missing" ] && return 0
	fi
	die "$work/qemu/usr/bin/qemu-system-aarch64 misses shared libraries ($(ldd \
		"$work/qemu/usr/bin/qemu-system-aarch64" | awk '/not found/ { printf "%s ", $1 }')): apt-get install --no-install-recommends $missing"
}

wanted=$(printf '%s\n' "${ARM64_PACKAGES[@]}" "host:$(host_arch)" "linux:$KERNEL_SERIES" \
	"qemu:$(path_qemu_will_do && echo path || echo backports)")
if [ "$refresh" -eq 0 ] && [ -f "$work/debian/complete" ] &&
	[ "$(cat "$work/debian/complete")" = "$wanted" ]; then
	check_qemu
	exit 0
fi

private_apt_lists "$refresh"

download() {
	rm -rf "$work/debs"
	mkdir -p "$work/debs"
	local kernel
	kernel=$(kernel_package)
	[ -n "$kernel" ] || return 1
	local pkgs=("$kernel" "${ARM64_PACKAGES[@]}" "busybox-static:$(host_arch)")
	if ! path_qemu_will_do; then
		local backports
		backports=$(host_codename)-backports
		pkgs+=("qemu-system-arm:$(host_arch)/$backports" "qemu-system-data/$backports")
	fi
	(cd "$work/debs" && private_apt_get download "${pkgs[@]}" >/dev/null)
}

note "downloading Debian packages into $work/debs"
if ! download; then
	note "download failed: updating the package lists and trying again"
	private_apt_get update >/dev/null
	download || die "cannot download the packages (see the apt errors above)"
fi

rm -rf "$work/debian" "$work/qemu"
mkdir -p "$work/debian/arm64" "$work/debian/host"
: > "$work/debian/versions"
for deb in "$work"/debs/*.deb; do
	pkg=$(dpkg-deb -f "$deb" Package)
	arch=$(dpkg-deb -f "$deb" Architecture)
	case "$pkg:$arch" in
	qemu-system-*) dest=$work/qemu ;;
	*:arm64|*:all) dest=$work/debian/arm64 ;;
	busybox-static:*) dest=$work/debian/host ;;
	*) die "unexpected package $pkg ($arch)" ;;
	esac
	mkdir -p "$dest"
	dpkg-deb -x "$deb" "$dest"
	printf '%s %s %s\n' "$pkg" "$arch" "$(dpkg-deb -f "$deb" Version)" >> "$work/debian/versions"
done

check_qemu
printf '%s\n' "$wanted" > "$work/debian/complete"
note "unpacked into $work/debian: $(awk '/^linux-image/ { print $1 " " $3 }' "$work/debian/versions"), $(grep -c . "$work/debian/versions") packages"
