#!/usr/bin/env bash
# Assembles the qemu boot test's SD-card images, one per board the test
# boots: the layout and the appliance's files of the real image, on
# Debian's arm64 kernel (6.12, the Raspberry Pi kernel's series) and
# BusyBox instead of Buildroot's. They go through image/mkimage.sh like the
# Buildroot image.
#
# Usage: image/qemu/build.sh --binary FILE [--out DIR]
#
#   --binary FILE  the static aarch64 pi-failover
#                  (cargo build --profile pi --target aarch64-unknown-linux-musl)
#   --out DIR      where the cards go, DIR/<board>/pi-failover.img
#                  (default: out/ in the work directory, see lib.sh)
#
# Prints one line per card on stdout: "BOARD PATH" (rpi3-64: qemu's
# raspi3b and virt; rpi4-64: qemu's raspi4b).
#
# The root filesystem (squashfs, read-only) is made as Buildroot makes it,
# in the same order, and is the same on every card:
#   1. the skeleton: image/qemu/skeleton/ stands in for Buildroot's (BusyBox
#      init, rcS/rcK, syslogd, mdev, DHCP on eth0, a getty on the console),
#      users from package/pi-failover/pi-failover.mk, hostname from the
#      defconfig;
#   2. packages: setpriv, partx, mountpoint (util-linux), sfdisk,
#      e2fsprogs, fw_printenv/fw_setenv (libubootenv) and their shared
#      libraries, CA certificates, then BusyBox
#      for every other command; pi-failover installed where pi-failover.mk
#      installs it (binary, run, watchdog, S99pi-failover);
#   3. the board's rootfs overlay (board/pi-failover/rootfs-overlay);
#   4. the board's post-build script (board/pi-failover/post-build.sh).
# Slot A's kernel partition gets the gzip-compressed kernel and an
# initramfs that loads the modules Buildroot's kernel has built in (see
# initramfs-init); the boot script loads both. Each card's FAT partition
# gets the board's DTB (upstream's name), Debian's U-Boot for the board
# (rpi_arm64, the file config.txt starts), the board's config.txt (plus
# device_tree=) and cmdline.txt (without "quiet").
set -euo pipefail

# shellcheck source=image/qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Modules the initramfs loads (dependencies are added), per qemu machine.
# What the real kernel has built in: squashfs, ext4, FAT and its code
# pages, loop and dm-verity (for update bundles), and the drivers of the
# (emulated) board.
COMMON_MODULES="squashfs crc32c_generic ext4 vfat nls_cp437 nls_ascii loop dm-verity"
VIRT_MODULES="virtio_mmio virtio_blk virtio_net virtio-rng $COMMON_MODULES"
# Not bcm2835_wdt: qemu's raspi3b resets the moment the watchdog is started.
# cdc_ether: qemu's usb-net stands in for the boards' USB Ethernet chips.
RASPI3B_MODULES="bcm2835 sdhci-iproc phy-generic dwc2 cdc_ether $COMMON_MODULES"
# The Pi 4's card is on its second SDHCI (emmc2); qemu's raspi4b has one
# SD controller, the first, which boot.sh enables in the DTB instead.
RASPI4B_MODULES="sdhci-iproc phy-generic dwc2 cdc_ether $COMMON_MODULES"

# board:DTB, the cards this builds; the board names Buildroot's
# board/pi-failover/<board>/config.txt.
BOARDS="rpi3-64:bcm2837-rpi-3-b.dtb rpi4-64:bcm2711-rpi-4-b.dtb"

board=$repo/buildroot-overlay/board/pi-failover
pkgdir=$repo/buildroot-overlay/package/pi-failover
defconfig=$repo/buildroot-overlay/configs/pifailover_rpi3_64_defconfig

binary=''
out=$work/out
while [ $# -gt 0 ]; do
	case "$1" in
	--binary) binary=${2:?--binary needs a file}; shift 2 ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done
build_cmd="cargo build --locked --profile pi --target aarch64-unknown-linux-musl"
[ -n "$binary" ] || die "--binary is required (the static aarch64 pi-failover: $build_cmd)"
[ -f "$binary" ] || die "$binary does not exist: $build_cmd"

need readelf binutils
need mksquashfs squashfs-tools
need cpio cpio
need gzip gzip
need xz xz-utils

readelf -h "$binary" | grep -q 'Machine:[[:space:]]*AArch64' ||
	die "$binary is not an aarch64 binary: $build_cmd"
if readelf -l "$binary" | grep -q 'program interpreter'; then
	die "$binary is dynamically linked; the image needs the static musl build: $build_cmd"
fi

"$qemu_dir/fetch.sh"
deb=$work/debian/arm64
bb_host=$work/debian/host/bin/busybox
kvers=("$deb"/lib/modules/*)
[ "${#kvers[@]}" -eq 1 ] || die "expected one kernel in $deb/lib/modules, found ${#kvers[@]}"
kver=${kvers[0]##*/}

build=$work/build
rm -rf "$build"
mkdir -p "$build"
rootfs=$build/rootfs

# ---------------------------------------------------------------------------
# 1. Skeleton

mkdir -p "$rootfs"
(cd "$rootfs" && mkdir -p bin sbin lib usr/bin usr/sbin usr/lib dev proc sys tmp run \
	run/lock mnt media opt root var/lib etc/ssl/certs \
	etc/network/if-pre-up.d etc/network/if-up.d etc/network/if-down.d etc/network/if-post-down.d)
cp -a "$qemu_dir/skeleton/." "$rootfs/"
rm -f "$rootfs/README.md"
for d in cache lock log spool tmp; do
	ln -s ../tmp "$rootfs/var/$d"
done
ln -s ../run "$rootfs/var/run"
ln -s ../../tmp "$rootfs/var/lib/misc"
ln -s ../tmp/resolv.conf "$rootfs/etc/resolv.conf"
ln -s ../proc/self/mounts "$rootfs/etc/mtab"

defconfig_value() {
	sed -n "s/^$1=\"\(.*\)\"$/\1/p" "$defconfig"
}
hostname=$(defconfig_value BR2_TARGET_GENERIC_HOSTNAME)
echo "${hostname:?no BR2_TARGET_GENERIC_HOSTNAME in $defconfig}" > "$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$hostname" > "$rootfs/etc/hosts"
defconfig_value BR2_TARGET_GENERIC_ISSUE > "$rootfs/etc/issue"

# The package's users, as Buildroot's mkusers writes them:
# "name uid group gid password home shell groups comment".
users=$(sed -n '/^define PI_FAILOVER_USERS/,/^endef/{/^define\|^endef/d;p}' "$pkgdir/pi-failover.mk")
[ -n "$users" ] || die "no PI_FAILOVER_USERS in pi-failover.mk"
while read -r name uid group gid passwd home shell _groups comment; do
	[ "$home" = - ] && home=/
	[ "$shell" = - ] && shell=/bin/false
	[ "$passwd" = - ] && passwd='*'
	printf '%s:x:%s:%s:%s:%s:%s\n' "$name" "$uid" "$gid" "$comment" "$home" "$shell" >> "$rootfs/etc/passwd"
	printf '%s:%s:19000:0:99999:7:::\n' "$name" "$passwd" >> "$rootfs/etc/shadow"
	printf '%s:x:%s:\n' "$group" "$gid" >> "$rootfs/etc/group"
done <<< "$users"

# ---------------------------------------------------------------------------
# 2. Packages

# copy_elf FILE: FILE (a path inside the Debian tree) into the root
# filesystem at the same path, with the shared libraries it needs.
copy_elf() {
	local rel=$1 lib dir found
	[ -e "$rootfs/$rel" ] && return 0
	mkdir -p "$(dirname "$rootfs/$rel")"
	cp -L "$deb/$rel" "$rootfs/$rel"
	for lib in $(readelf -d "$deb/$rel" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		found=''
		for dir in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib; do
			if [ -e "$deb/$dir/$lib" ]; then
				copy_elf "$dir/$lib"
				found=1
				break
			fi
		done
		[ -n "$found" ] || die "$rel needs $lib, which no fetched package has (add its package to fetch.sh)"
	done
}
copy_elf lib/ld-linux-aarch64.so.1
for f in usr/bin/setpriv usr/bin/partx bin/mountpoint sbin/sfdisk sbin/e2fsck sbin/mke2fs \
	usr/bin/fw_printenv usr/bin/fw_setenv usr/bin/rauc usr/bin/dbus-daemon usr/bin/dbus-uuidgen; do
	copy_elf "$f"
done
ln -s mke2fs "$rootfs/sbin/mkfs.ext4"
# Debian's rauc is built with its D-Bus service (as the defconfigs build
# Buildroot's): the system bus's configuration, RAUC's policy, and the
# user Debian's bus runs as (Buildroot's dbus package calls it "dbus").
mkdir -p "$rootfs/usr/share/dbus-1/system.d"
cp "$deb/usr/share/dbus-1/system.conf" "$rootfs/usr/share/dbus-1/"
cp "$deb/usr/share/dbus-1/system.d/de.pengutronix.rauc.conf" "$rootfs/usr/share/dbus-1/system.d/"
printf 'messagebus:x:100:101::/nonexistent:/bin/false\n' >> "$rootfs/etc/passwd"
printf 'messagebus:*:19000:0:99999:7:::\n' >> "$rootfs/etc/shadow"
printf 'messagebus:x:101:\n' >> "$rootfs/etc/group"
ln -s /tmp/dbus "$rootfs/var/lib/dbus"
cp "$deb/etc/mke2fs.conf" "$rootfs/etc/"
cat "$deb"/usr/share/ca-certificates/mozilla/*.crt > "$rootfs/etc/ssl/certs/ca-certificates.crt"

# pi-failover, where pi-failover.mk installs it.
install_as_mk() { # SOURCE MODE TARGET
	grep -q "(TARGET_DIR)$3\$" "$pkgdir/pi-failover.mk" ||
		die "pi-failover.mk no longer installs $3: update image/qemu/build.sh"
	install -D -m "$2" "$1" "$rootfs$3"
}
install_as_mk "$binary" 0755 /usr/bin/pi-failover
install_as_mk "$pkgdir/pi-failover-run" 0755 /usr/libexec/pi-failover/run
install_as_mk "$pkgdir/pi-failover-watchdog" 0755 /usr/libexec/pi-failover/watchdog
install_as_mk "$pkgdir/pi-failover-lib" 0644 /usr/libexec/pi-failover/lib.sh
install_as_mk "$pkgdir/S99pi-failover" 0755 /etc/init.d/S99pi-failover

# BusyBox last, for every command no package installed (as Buildroot does).
install -m 0755 "$deb/bin/busybox" "$rootfs/bin/busybox"
applets=$("$bb_host" --list-full) || die "cannot run $bb_host to list the applets"
while read -r applet; do
	if [ -e "$rootfs/$applet" ] || [ -L "$rootfs/$applet" ]; then
		continue
	fi
	mkdir -p "$(dirname "$rootfs/$applet")"
	ln -s /bin/busybox "$rootfs/$applet"
done <<< "$applets"

# ---------------------------------------------------------------------------
# 3. The board's rootfs overlay, 4. its post-build script

cp -a "$board/rootfs-overlay/." "$rootfs/"
# The build's configuration as post-build.sh reads it: the defconfig, and
# the test's update keyring (keys/: the owner's key pair of the test, made
# once; the test signs its bundles with it).
keys=$work/keys
if [ ! -f "$keys/owner.cert.pem" ]; then
	mkdir -p "$keys"
	openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=pi-failover test owner" \
		-keyout "$keys/owner.key.pem" -out "$keys/owner.cert.pem" 2>/dev/null ||
		die "openssl could not make the test's signing key"
fi
{
	cat "$defconfig"
	printf 'BR2_PACKAGE_PI_FAILOVER_UPDATE_KEYRING="%s"\n' "$keys/owner.cert.pem"
} > "$build/br2-config"
BR2_CONFIG=$build/br2-config BR2_EXTERNAL_PIFAILOVER_PATH=$repo/buildroot-overlay HOST_DIR=$build/host \
	"$board/post-build.sh" "$rootfs" >/dev/null

mksquashfs "$rootfs" "$build/rootfs.squashfs" -comp zstd -all-root -noappend -quiet >/dev/null

# ---------------------------------------------------------------------------
# The initramfs

modules=$deb/lib/modules/$kver/kernel
declare -A module_path
while IFS= read -r -d '' ko; do
	name=${ko##*/}
	name=${name%.xz}
	name=${name%.ko}
	module_path[${name//-/_}]=$ko
done < <(find "$modules" \( -name '*.ko' -o -name '*.ko.xz' \) -print0)

# module_bytes FILE: the module, uncompressed (Debian's 6.12 packages ship
# .ko.xz; the initramfs's BusyBox insmod takes plain .ko).
module_bytes() {
	case "$1" in
	*.xz) xz -dc "$1" ;;
	*) cat "$1" ;;
	esac
}

declare -A module_done
module_order=()
# add_module NAME: NAME after the modules it depends on (its .modinfo).
add_module() {
	local key=${1//-/_} ko dep
	[ -n "${module_done[$key]:-}" ] && return 0
	ko=${module_path[$key]:-}
	[ -n "$ko" ] || die "no module $1 in $kver"
	module_done[$key]=1
	for dep in $(module_bytes "$ko" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
		add_module "$dep"
	done
	module_order+=("$key")
}

initramfs=$build/initramfs
mkdir -p "$initramfs"/{bin,sbin,usr/bin,usr/sbin,etc,lib/modules}
install -m 0755 "$deb/bin/busybox" "$initramfs/bin/busybox"
ln -s busybox "$initramfs/bin/sh"
install -m 0755 "$qemu_dir/initramfs-init" "$initramfs/init"
for machine in virt raspi3b raspi4b; do
	module_done=()
	module_order=()
	case "$machine" in
	virt) list=$VIRT_MODULES ;;
	raspi3b) list=$RASPI3B_MODULES ;;
	raspi4b) list=$RASPI4B_MODULES ;;
	esac
	for m in $list; do
		add_module "$m"
	done
	printf '%s\n' "${module_order[@]}" > "$initramfs/etc/modules.$machine"
	for key in "${module_order[@]}"; do
		# Not stripped: that would drop the signature and taint the kernel.
		module_bytes "${module_path[$key]}" > "$initramfs/lib/modules/$key.ko"
	done
done

initrd=$build/initrd.img
(cd "$initramfs" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -9 -n > "$initrd"
gzip -9 -n < "$deb/boot/vmlinuz-$kver" > "$build/Image.gz"

# ---------------------------------------------------------------------------
# The cards: one FAT partition per board, the same root filesystem

size() { du -k --apparent-size "$1" | awk '{ printf "%.1f MiB", $1 / 1024 }'; }
note "kernel $kver: Image.gz $(size "$build/Image.gz"), initrd.img $(size "$initrd"); root $(size "$build/rootfs.squashfs")"
kernel_dir=$build/kernel
mkdir -p "$kernel_dir"
cp "$build/Image.gz" "$initrd" "$kernel_dir/"
uboot_rpi=$deb/usr/lib/u-boot/rpi_arm64/u-boot.bin
[ -f "$uboot_rpi" ] || die "no $uboot_rpi: run image/qemu/fetch.sh --refresh"
for entry in $BOARDS; do
	name=${entry%%:*}
	dtb=${entry#*:}
	boot=$build/boot-$name
	rm -rf "$boot"
	mkdir -p "$boot"
	cp "$deb/usr/lib/linux-image-$kver/broadcom/$dtb" "$boot/"
	# The U-Boot config.txt starts: Debian's build of the same rpi_arm64 board.
	cp "$uboot_rpi" "$boot/u-boot.bin"
	[ -f "$board/$name/config.txt" ] || die "no $board/$name/config.txt"
	{
		cat "$board/$name/config.txt"
		cat <<EOF

# qemu boot test (image/qemu/build.sh): the board's device tree has
# upstream's name.
device_tree=$dtb
EOF
	} > "$boot/config.txt"
	sed -e 's/[[:space:]]quiet\b//' "$board/cmdline.txt" > "$boot/cmdline.txt"

	if ! "$repo/image/mkimage.sh" --boot "$boot" --kernel "$kernel_dir" \
		--rootfs "$build/rootfs.squashfs" \
		--out "$out/$name" --work "$build/genimage-$name" > "$build/mkimage-$name.log" 2>&1; then
		cat "$build/mkimage-$name.log" >&2
		die "image/mkimage.sh failed for $name"
	fi
	note "$out/$name/pi-failover.img: $(size "$out/$name/pi-failover.img")"
	echo "$name $out/$name/pi-failover.img"
done
