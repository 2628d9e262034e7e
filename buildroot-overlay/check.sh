#!/usr/bin/env bash
# Check the pi-failover BR2_EXTERNAL tree (buildroot-overlay/) and the
# SD-card layout (image/) without network and, by default, without
# Buildroot.
#
# Usage: buildroot-overlay/check.sh
#
# Always (no network, no Buildroot checkout):
#   tree        external.desc is named PIFAILOVER; Config.in sources every
#               package; external.mk includes every package's .mk
#   defconfigs  each configs/*_defconfig enables BR2_PACKAGE_PI_FAILOVER and
#               what the appliance needs (CA certificates, squashfs root,
#               setpriv, sfdisk/partx, e2fsprogs, mdev, no rw remount,
#               BusyBox ntpd, the bcm2835 watchdog, I2C); U-Boot from its
#               rpi_arm64 defconfig in Buildroot's own (hashed) version,
#               building u-boot.bin, host u-boot-tools (mkimage,
#               mkenvimage) and libubootenv (fw_printenv/fw_setenv); a
#               gzip-compressed kernel (Image.gz, the name boot.cmd
#               loads); every path it names through
#               $(BR2_EXTERNAL_PIFAILOVER_PATH) exists, and its
#               post-build/post-image scripts are executable
#   package     pi-failover.mk: every variable is PI_FAILOVER_*; the
#               version and license are Cargo.toml's; license files (if
#               listed) exist; SITE is the repository's dist/ (release.sh's
#               tarball), SITE_METHOD file; for a working copy
#               (OVERRIDE_SRCDIR) the rsync exclusions keep target/ and the other non-crate
#               trees out; the cargo profile it forces equals Cargo.toml's
#               [profile.pi] (the size-tuned profile of the Pi's binary); it ends with one $(eval $(cargo-package));
#               every file it installs exists; Config.in, S99pi-failover,
#               the user's gid and /etc/fstab agree
#   boot files  config.txt (arm_64bit=1, kernel=u-boot.bin, i2c_arm,
#               watchdog, the firmware variant the defconfig installs),
#               cmdline.txt (ro, rootwait, console, rootfstype=squashfs,
#               and no root=: the boot script adds the slot's),
#               image/boot.cmd (root=PARTUUID= with image/genimage.cfg's
#               disk signature: -03 for slot A, -06 for slot B; the boot
#               state at the offset and size genimage.cfg and the
#               overlay's /etc/fw_env.config give it), /etc/fstab (/ ro,
#               /boot vfat ro, /data ext4 rw)
#   scripts     shellcheck on every shell script in buildroot-overlay/ and
#               image/
#   image       image/mkimage.sh with image/genimage.cfg builds an image
#               from stand-in boot files (u-boot.bin), kernel (Image.gz)
#               and root filesystem; checked: the partition table (p1 boot
#               FAT, p2 slot A's kernel FAT, p3 slot A's squashfs root),
#               both FAT partitions' contents (boot.scr compiled from
#               image/boot.cmd), the boot state at 1 MiB (read back with
#               fw_printenv through the overlay's fw_env.config), and the
#               size (<= 64 MiB, ending where the squashfs ends)
#   vendor      if the repository has vendor/, it holds every crate of
#               Cargo.lock
#   release     with CHECK_RELEASE=require: release.sh makes the source
#               tarball twice (the same bytes: reproducible), its hash file
#               matches it, it holds VENDOR/ with every crate of Cargo.lock
#               and nothing but the crate's files, and the unpacked release
#               resolves every dependency with no network at all (cargo
#               metadata --offline inside "unshare -n" when root can)
#
# With BUILDROOT=/path/to/a/buildroot/checkout, also:
#   - ../shared/tools/br-external-check --lint --rsync on each defconfig:
#     "make BR2_EXTERNAL=... <defconfig>" resolves with the package enabled
#     and every option kept, the package's .mk resolves and its source
#     rsyncs, and Buildroot's utils/check-package reports nothing
#   - each defconfig's kernel tarball is the one Buildroot's own
#     raspberrypi*_64 defconfig uses, and Buildroot has its hash
#   - Buildroot's Rust is at least the crates' minimum Rust version
#     (Cargo.toml's rust-version and, when their sources are at hand in
#     vendor/ or the cargo registry, every locked crate's)
#
# Environment:
#   BUILDROOT          Buildroot checkout (unset: those checks are skipped)
#   BR_EXTERNAL_CHECK  the checker (default: ../shared/tools/br-external-check
#                      relative to the repository)
#   PYTHON             python3 with the "magic" and "flake8" modules, for
#                      utils/check-package (default: the first of python3,
#                      /usr/bin/python3 that has both)
#   CHECK_IMAGE        auto: skip the image test when genimage, mkdosfs,
#                      mcopy, mksquashfs, sfdisk, mkimage or mkenvimage is
#                      missing, and its boot-state read-back when
#                      fw_printenv (libubootenv-tool) is (default);
#                      require: fail then; off: skip it
#   CHECK_KERNEL       off: skip the fragment merge below (default; it needs
#                      the network once); require: run
#                      image/qemu/kernel-fragment.sh, which merges
#                      board/pi-failover/linux.fragment into Debian's arm64
#                      6.12 config with the 6.12 Kconfig tree and fails when a
#                      line does not survive (.ci/run requires it)
#   CHECK_RELEASE      off: skip the release check (default; it needs the
#                      crates once); require: run it (.ci/run does)
#   CARGO_HOME         where the cargo registry is (default: ~/.cargo)
#
# Exit status: 0 all checks passed, 1 a check failed, 2 setup error.

# Single quotes hold make's $(...) literally throughout this script.
# shellcheck disable=SC2016
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
pkgdir=$here/package/pi-failover
mk=$pkgdir/pi-failover.mk

fails=0
ok() { printf 'ok    %s\n' "$*"; }
fail() {
	printf 'FAIL  %s\n' "$*"
	fails=$((fails + 1))
}
note() { printf 'note  %s\n' "$*"; }
section() { printf '\n== %s\n' "$*"; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 2
}

# toml_value FILE SECTION KEY: the value of KEY in [SECTION] (SECTION dotted), read by a
# real TOML parser (toml-get.py, Python's tomllib).
toml_value() {
	python3 "$here/toml-get.py" "$1" "$2" "$3"
}

# mk_value VAR: the value of "VAR = ..." in pi-failover.mk (one line).
mk_value() {
	sed -n "s/^$1[[:space:]]*=[[:space:]]*//p" "$mk" | head -n 1
}

# mk_block VAR: the continuation lines of a multi-line "VAR = \" in the .mk.
mk_block() {
	awk -v var="$1" '
		$0 ~ "^" var "[[:space:]]*[+:]?=" { on = 1 }
		on { print; if ($0 !~ /\\$/) exit }' "$mk"
}

# defconfig_value FILE SYMBOL: the unquoted value of SYMBOL in a defconfig.
defconfig_value() {
	sed -n "s/^$2=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$1" | tail -n 1
}

# ext_path VALUE: $(BR2_EXTERNAL_PIFAILOVER_PATH) replaced by this tree.
ext_path() {
	local v=$1
	v=${v//\$(BR2_EXTERNAL_PIFAILOVER_PATH)/$here}
	printf '%s' "${v//\$\{BR2_EXTERNAL_PIFAILOVER_PATH\}/$here}"
}

# version_ge A B: A >= B (dotted versions).
version_ge() {
	[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]
}

[ -f "$repo/Cargo.toml" ] || die "no Cargo.toml in $repo: is $here the repository's buildroot-overlay/?"
command -v shellcheck >/dev/null || die "shellcheck not found (apt-get install shellcheck)"
python3 -c "import tomllib" 2>/dev/null || die "python3 3.11 or later (its tomllib reads the TOML files) not found"

genimage_cfg=$repo/image/genimage.cfg
disk_sig=$(sed -n 's/^[[:space:]]*disk-signature[[:space:]]*=[[:space:]]*0x\([0-9a-fA-F]*\).*/\1/p' \
	"$genimage_cfg" 2>/dev/null)
boot_cmd=$repo/image/boot.cmd
# The file boot.cmd loads from a slot's kernel partition (Image.gz).
boot_kernel=$(sed -n 's/^[[:space:]]*if load .*\${kernel_addr_r}[[:space:]]\{1,\}\([^[:space:];]*\).*/\1/p' \
	"$boot_cmd" 2>/dev/null | head -n 1)
# The overlay's libubootenv configuration: where Linux reads and writes the boot state.
fw_env=$here/board/pi-failover/rootfs-overlay/etc/fw_env.config

# ---------------------------------------------------------------------------
section "tree"
name=$(sed -n 's/^name:[[:space:]]*//p' "$here/external.desc" 2>/dev/null | tr -d '[:space:]')
if [ "$name" = PIFAILOVER ]; then
	ok "external.desc: name: PIFAILOVER"
else
	fail "external.desc must say 'name: PIFAILOVER' (paths use \$(BR2_EXTERNAL_PIFAILOVER_PATH)), found '${name}'"
fi
for p in "$here"/package/*/; do
	p=$(basename "$p")
	if grep -qxF "source \"\$BR2_EXTERNAL_PIFAILOVER_PATH/package/$p/Config.in\"" "$here/Config.in"; then
		ok "Config.in sources package/$p/Config.in"
	else
		fail "Config.in does not source \"\$BR2_EXTERNAL_PIFAILOVER_PATH/package/$p/Config.in\""
	fi
done
if grep -qF 'include $(sort $(wildcard $(BR2_EXTERNAL_PIFAILOVER_PATH)/package/*/*.mk))' \
	"$here/external.mk"; then
	ok "external.mk includes package/*/*.mk"
else
	fail "external.mk does not include \$(BR2_EXTERNAL_PIFAILOVER_PATH)/package/*/*.mk"
fi

# ---------------------------------------------------------------------------
section "defconfigs"
required=(
	"BR2_PACKAGE_PI_FAILOVER=y"
	"BR2_DOWNLOAD_FORCE_CHECK_HASHES=y"
	"BR2_PACKAGE_CA_CERTIFICATES=y"
	"BR2_TARGET_ROOTFS_SQUASHFS=y"
	"# BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW is not set"
	"BR2_ROOTFS_DEVICE_CREATION_DYNAMIC_MDEV=y"
	"BR2_PACKAGE_UTIL_LINUX_SETPRIV=y"
	"BR2_PACKAGE_UTIL_LINUX_BINARIES=y"
	"BR2_PACKAGE_UTIL_LINUX_PARTX=y"
	"BR2_PACKAGE_E2FSPROGS=y"
	"BR2_PACKAGE_RPI_FIRMWARE=y"
	"BR2_PACKAGE_HOST_GENIMAGE=y"
	"BR2_PACKAGE_HOST_DOSFSTOOLS=y"
	"BR2_PACKAGE_HOST_MTOOLS=y"
	"# BR2_TARGET_ENABLE_ROOT_LOGIN is not set"
)
# The boot chain (firmware, U-Boot, boot.scr, a slot), the tools of the boot state, and RAUC.
# LATEST_VERSION: the U-Boot release Buildroot itself hashes (boot/uboot/uboot.hash); any
# other version would need its own hash file under BR2_DOWNLOAD_FORCE_CHECK_HASHES.
uboot_required=(
	"BR2_TARGET_UBOOT=y"
	"BR2_TARGET_UBOOT_BUILD_SYSTEM_KCONFIG=y"
	"BR2_TARGET_UBOOT_LATEST_VERSION=y"
	'BR2_TARGET_UBOOT_BOARD_DEFCONFIG="rpi_arm64"'
	"BR2_PACKAGE_HOST_UBOOT_TOOLS=y"
	"BR2_PACKAGE_LIBUBOOTENV=y"
	# Updates: RAUC with its D-Bus service (the unprivileged appliance asks it), JSON status,
	# and the host's rauc for the bundle post-image.sh makes.
	"BR2_PACKAGE_RAUC=y"
	"BR2_PACKAGE_RAUC_DBUS=y"
	"BR2_PACKAGE_RAUC_JSON=y"
	"BR2_PACKAGE_HOST_RAUC=y"
)
declare -A kernel_format=(
	[Image.gz]=BR2_LINUX_KERNEL_IMAGEGZ
	[Image]=BR2_LINUX_KERNEL_IMAGE
)
path_options=(
	BR2_ROOTFS_OVERLAY
	BR2_ROOTFS_POST_BUILD_SCRIPT
	BR2_ROOTFS_POST_IMAGE_SCRIPT
	BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE
	BR2_PACKAGE_RPI_FIRMWARE_CMDLINE_FILE
	BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES
	BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES
)
declare -A firmware_start=(
	[BR2_PACKAGE_RPI_FIRMWARE_VARIANT_PI]=start.elf
	[BR2_PACKAGE_RPI_FIRMWARE_VARIANT_PI_X]=start_x.elf
	[BR2_PACKAGE_RPI_FIRMWARE_VARIANT_PI_CD]=start_cd.elf
	[BR2_PACKAGE_RPI_FIRMWARE_VARIANT_PI_DB]=start_db.elf
	[BR2_PACKAGE_RPI_FIRMWARE_VARIANT_PI4]=start4.elf
	[BR2_PACKAGE_RPI_FIRMWARE_VARIANT_PI4_X]=start4x.elf
	[BR2_PACKAGE_RPI_FIRMWARE_VARIANT_PI4_CD]=start4cd.elf
	[BR2_PACKAGE_RPI_FIRMWARE_VARIANT_PI4_DB]=start4db.elf
)
# require_lines DEFCONFIG WHY LINE...: a failure, saying WHY, for each LINE the defconfig
# lacks; status 1 if any.
require_lines() {
	local dc=$1 why=$2 line missing=0
	shift 2
	for line in "$@"; do
		if ! grep -qxF -- "$line" "$dc"; then
			fail "$(basename "$dc"): missing '$line'$why"
			missing=1
		fi
	done
	return "$missing"
}
defconfigs=("$here"/configs/*_defconfig)
[ -f "${defconfigs[0]}" ] || fail "no configs/*_defconfig"
config_txts=()
cmdline_txts=()
for dc in "${defconfigs[@]}"; do
	[ -f "$dc" ] || continue
	d=$(basename "$dc")
	bad=0
	require_lines "$dc" "" "${required[@]}" || bad=1
	[ "$bad" -eq 0 ] && ok "$d: enables BR2_PACKAGE_PI_FAILOVER and the appliance's ${#required[@]} required options"

	bad=0
	require_lines "$dc" " (the boot chain and updates: U-Boot's rpi_arm64 in Buildroot's hashed version, mkimage/mkenvimage for image/mkimage.sh, fw_printenv/fw_setenv on the Pi, RAUC with its D-Bus service and JSON, the host's rauc for bundles)" \
		"${uboot_required[@]}" || bad=1
	if grep -qx '# BR2_TARGET_UBOOT_FORMAT_BIN is not set' "$dc"; then
		fail "$d: U-Boot must build u-boot.bin (BR2_TARGET_UBOOT_FORMAT_BIN), the file config.txt boots"
		bad=1
	fi
	[ "$bad" -eq 0 ] && ok "$d: U-Boot $(defconfig_value "$dc" BR2_TARGET_UBOOT_BOARD_DEFCONFIG) (u-boot.bin, Buildroot's own version), host u-boot-tools, libubootenv, RAUC (D-Bus, JSON), host rauc"
	format=${kernel_format[${boot_kernel:-?}]:-}
	if [ -z "$format" ]; then
		fail "image/boot.cmd loads '${boot_kernel}' from a kernel partition: not a kernel format check.sh knows (Image.gz, Image)"
	elif grep -qx "$format=y" "$dc"; then
		ok "$d: builds $boot_kernel ($format), the kernel image/boot.cmd loads"
	else
		fail "$d: image/boot.cmd loads $boot_kernel, so the kernel must be built as $format=y"
	fi

	for opt in "${path_options[@]}"; do
		[ -n "$(defconfig_value "$dc" "$opt")" ] || fail "$d: $opt is not set"
	done

	# Every path named through the external tree exists.
	paths=0
	while IFS= read -r token; do
		p=$(ext_path "$token")
		if [ -e "$p" ]; then
			paths=$((paths + 1))
		else
			fail "$d: $token does not exist"
		fi
	done < <(grep -o '\$(BR2_EXTERNAL_PIFAILOVER_PATH)[^" ]*' "$dc")
	ok "$d: all $paths paths under \$(BR2_EXTERNAL_PIFAILOVER_PATH) exist"
	for opt in BR2_ROOTFS_POST_BUILD_SCRIPT BR2_ROOTFS_POST_IMAGE_SCRIPT; do
		s=$(ext_path "$(defconfig_value "$dc" "$opt")")
		if [ -n "$s" ] && [ -f "$s" ] && [ ! -x "$s" ]; then
			fail "$d: $opt $s is not executable"
		fi
	done

	# What the appliance needs from the fragments and config.txt.
	bbfrag=$(ext_path "$(defconfig_value "$dc" BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES)")
	# Ours, among Buildroot's own (the Pi 5 adds its 4K-page fragment).
	lxfrag=''
	for f in $(ext_path "$(defconfig_value "$dc" BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES)"); do
		case "$f" in "$here"/*) lxfrag=$f ;; esac
	done
	cfgtxt=$(ext_path "$(defconfig_value "$dc" BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE)")
	cmdline=$(ext_path "$(defconfig_value "$dc" BR2_PACKAGE_RPI_FIRMWARE_CMDLINE_FILE)")
	[ -f "$cfgtxt" ] && config_txts+=("$dc|$cfgtxt")
	[ -f "$cmdline" ] && cmdline_txts+=("$cmdline")
	# One artifact: the card's binary is the static musl one CI tests (pi-failover.mk).
	if grep -qE '^BR2_TOOLCHAIN_EXTERNAL_BOOTLIN_AARCH64_MUSL_(STABLE|BLEEDING_EDGE)=y$' "$dc"; then
		ok "$d: Bootlin's aarch64 musl toolchain (the static binary .ci/run measures and boots)"
	else
		fail "$d: must use BR2_TOOLCHAIN_EXTERNAL_BOOTLIN_AARCH64_MUSL_STABLE=y: the package builds aarch64-unknown-linux-musl, the binary CI tests"
	fi
	if grep -q '^BR2_SYSTEM_DHCP=' "$dc"; then
		fail "$d: BR2_SYSTEM_DHCP brings eth0 up once at boot; the overlay's respawned network script does it (a late USB NIC)"
	fi
	for want in "$bbfrag|CONFIG_NTPD=y|an NTP client (BusyBox ntpd)" \
		"$lxfrag|CONFIG_IPV6=y|IPv6 built in (the Pi defconfigs make it a module nothing loads)" \
		"$bbfrag|CONFIG_TIMEOUT=y|timeout (the watchdog feeder's probe)" \
		"$lxfrag|CONFIG_BCM2835_WDT=y|the hardware watchdog driver" \
		"$lxfrag|CONFIG_SQUASHFS=y|a built-in squashfs for the root" \
		"$lxfrag|CONFIG_I2C_CHARDEV=y|/dev/i2c-* for the OLED"; do
		f=${want%%|*}
		rest=${want#*|}
		line=${rest%%|*}
		what=${rest#*|}
		if [ -f "$f" ] && grep -qxF "$line" "$f"; then
			ok "$d: $what ($line in ${f#"$here"/})"
		else
			fail "$d: ${f#"$here"/} should have $line: $what"
		fi
	done
done

# ---------------------------------------------------------------------------
section "package pi-failover"
bad_vars=$(grep -oE '^(define[[:space:]]+)?[A-Z0-9_]+[[:space:]]*([+:?]?=|$)' "$mk" |
	sed -E 's/^define[[:space:]]+//; s/[[:space:]]*[+:?]?=$//' | grep -v '^PI_FAILOVER_' | sort -u)
if [ -z "$bad_vars" ]; then
	ok "every variable in pi-failover.mk is PI_FAILOVER_*"
else
	fail "pi-failover.mk variables without the PI_FAILOVER_ prefix: $(echo "$bad_vars" | tr '\n' ' ')"
fi

cargo_version=$(toml_value "$repo/Cargo.toml" package version)
mk_version=$(mk_value PI_FAILOVER_VERSION)
if [ -n "$mk_version" ] && [ "$mk_version" = "$cargo_version" ]; then
	ok "PI_FAILOVER_VERSION = $mk_version, as in Cargo.toml"
else
	fail "PI_FAILOVER_VERSION is '$mk_version' but Cargo.toml says version = \"$cargo_version\""
fi

cargo_license=$(toml_value "$repo/Cargo.toml" package license)
mk_license=$(mk_value PI_FAILOVER_LICENSE)
norm_license() { sed -E 's/[[:space:]]+(OR|or)[[:space:]]+/\n/g' | sort | tr '\n' ' '; }
if [ -z "$mk_license" ]; then
	fail "PI_FAILOVER_LICENSE is not set"
elif [ "$(norm_license <<<"$mk_license")" = "$(norm_license <<<"$cargo_license")" ]; then
	ok "PI_FAILOVER_LICENSE = $mk_license (Cargo.toml: $cargo_license)"
else
	fail "PI_FAILOVER_LICENSE = '$mk_license' but Cargo.toml says license = \"$cargo_license\""
fi
license_files=$(mk_value PI_FAILOVER_LICENSE_FILES)
if [ -z "$license_files" ]; then
	note "PI_FAILOVER_LICENSE_FILES is not set (the repository has no license file yet); 'make legal-info' will warn"
else
	for f in $license_files; do
		if [ -f "$repo/$f" ]; then ok "license file $f exists"
		else fail "PI_FAILOVER_LICENSE_FILES names $f, which is not in the repository"; fi
	done
fi

if [ "$(mk_value PI_FAILOVER_SITE_METHOD)" = file ] &&
	mk_value PI_FAILOVER_SITE | grep -qF '$(BR2_EXTERNAL_PIFAILOVER_PATH)/..)/dist'; then
	ok "PI_FAILOVER_SITE is the repository's dist/ (release.sh's tarball), SITE_METHOD = file"
else
	fail "PI_FAILOVER_SITE must be \$(realpath \$(BR2_EXTERNAL_PIFAILOVER_PATH)/..)/dist with PI_FAILOVER_SITE_METHOD = file"
fi
if grep -qx '/buildroot-overlay/package/pi-failover/pi-failover.hash' "$repo/.gitignore" &&
	grep -qx '/dist' "$repo/.gitignore"; then
	ok "dist/ and the generated pi-failover.hash are gitignored (release.sh writes them)"
else
	fail ".gitignore must list /dist and /buildroot-overlay/package/pi-failover/pi-failover.hash"
fi

exclusions=$(mk_block PI_FAILOVER_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS)
missing_excl=()
for e in /target /buildroot-overlay /image /tests /bench /.cargo; do
	grep -qF -- "--exclude=$e" <<<"$exclusions" || missing_excl+=("$e")
done
if [ ${#missing_excl[@]} -eq 0 ]; then
	ok "rsync leaves out /target /buildroot-overlay /image /tests /bench /.cargo"
else
	fail "PI_FAILOVER_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS lacks --exclude= for: ${missing_excl[*]}"
fi
copied=()
for entry in "$repo"/* "$repo"/.[!.]*; do
	[ -e "$entry" ] || continue
	e=$(basename "$entry")
	case "$e" in
	Cargo.toml | Cargo.lock | build.rs | src | vendor | .git | .gitignore | README* | LICENSE* | COPYING*) continue ;;
	esac
	grep -qF -- "--exclude=/$e" <<<"$exclusions" && continue
	copied+=("$e")
done
if [ ${#copied[@]} -gt 0 ]; then
	note "also rsynced into the build directory (not needed by cargo): ${copied[*]}"
fi

# One artifact: the package's cargo arguments are .ci/run's cross build's (target, profile,
# features), it installs what that build writes, and [profile.pi] sets every key pkg-cargo.mk
# exports for the release profile (an inherited key would take Buildroot's value).
ci_build=$(grep -E '^[[:space:]]*cargo build .*--target aarch64' "$repo/.ci/run" | head -n 1)
words_of() { sed 's/\\/ /g' | tr -s '[:space:]' '\n' | grep -v -e '^$' -e '^--locked$' -e '^--offline$' | sort | tr '\n' ' '; }
ci_args=$(sed -E 's/^[[:space:]]*cargo build[[:space:]]+//' <<<"$ci_build" | words_of)
mk_args=$(mk_block PI_FAILOVER_CARGO_BUILD_OPTS | sed -E 's/^PI_FAILOVER_CARGO_BUILD_OPTS[[:space:]]*=//' | words_of)
if [ -n "$ci_args" ] && [ "$ci_args" = "$mk_args" ]; then
	ok "the package builds with .ci/run's cargo arguments: $mk_args"
else
	fail "PI_FAILOVER_CARGO_BUILD_OPTS ($mk_args) differ from .ci/run's cross build ($ci_args): the card would carry another binary than CI tests"
fi
# ... and the same rustflags: .cargo/config.toml's for the target, the package's environment.
cfg_flags=$(sed -n '/^\[target\.aarch64-unknown-linux-musl\]/,/^\[/s/^rustflags[[:space:]]*=[[:space:]]*\[\(.*\)\]/\1/p' "$repo/.cargo/config.toml" | tr -d '",' | tr -s ' ')
mk_flags=$(mk_block PI_FAILOVER_CARGO_ENV | sed -n 's/.*CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="\([^"]*\)".*/\1/p' | tr -s ' ')
if [ -n "$cfg_flags" ] && [ "$cfg_flags" = "$mk_flags" ]; then
	ok "the package builds with .cargo/config.toml's rustflags: $mk_flags"
else
	fail "PI_FAILOVER_CARGO_ENV's rustflags ($mk_flags) differ from .cargo/config.toml's for aarch64-unknown-linux-musl ($cfg_flags)"
fi
ci_bin=$(sed -n 's/^[[:space:]]*bin=//p' "$repo/.ci/run" | head -n 1)
if [ -n "$ci_bin" ] && grep -qF "\$(@D)/$ci_bin" "$mk"; then
	ok "the package installs $ci_bin, the file .ci/run measures"
else
	fail "pi-failover.mk must install \$(@D)/${ci_bin:-target/...} (.ci/run's bin=)"
fi
missing_keys=()
for key in opt-level lto codegen-units debug incremental split-debuginfo debug-assertions overflow-checks; do
	[ -n "$(toml_value "$repo/Cargo.toml" profile.pi "$key")" ] || missing_keys+=("$key")
done
if [ ${#missing_keys[@]} -eq 0 ]; then
	ok "Cargo.toml [profile.pi] sets every key pkg-cargo.mk exports for release"
else
	fail "Cargo.toml [profile.pi] must set ${missing_keys[*]} itself: pkg-cargo.mk's CARGO_PROFILE_RELEASE_* would reach it through inherits"
fi

last=$(grep -v '^[[:space:]]*$' "$mk" | tail -n 1)
evals=$(grep -c 'cargo-package' "$mk")
if [ "$last" = '$(eval $(cargo-package))' ] && [ "$evals" -eq 1 ]; then
	ok "pi-failover.mk ends with its one \$(eval \$(cargo-package))"
else
	fail "pi-failover.mk must end with a single \$(eval \$(cargo-package))"
fi

while IFS= read -r f; do
	if [ -f "$pkgdir/$f" ]; then ok "installed file package/pi-failover/$f exists"
	else fail "pi-failover.mk installs \$(PI_FAILOVER_PKGDIR)/$f, which does not exist"; fi
done < <(grep -o '\$(PI_FAILOVER_PKGDIR)/[A-Za-z0-9._-]*' "$mk" | sed 's/.*)\///' | sort -u)

cfgin=$pkgdir/Config.in
if grep -qx 'config BR2_PACKAGE_PI_FAILOVER' "$cfgin" &&
	grep -qxF $'\tdepends on BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS' "$cfgin" &&
	grep -qxF $'\tselect BR2_PACKAGE_HOST_RUSTC' "$cfgin"; then
	ok "Config.in: BR2_PACKAGE_PI_FAILOVER depends on the Rust target support and selects host-rustc"
else
	fail "package/pi-failover/Config.in must define BR2_PACKAGE_PI_FAILOVER, depend on BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS and select BR2_PACKAGE_HOST_RUSTC"
fi
if grep -qx 'DAEMON="pi-failover"' "$pkgdir/S99pi-failover" 2>/dev/null; then
	ok "S99pi-failover: DAEMON=\"pi-failover\""
else
	fail "package/pi-failover/S99pi-failover must set DAEMON=\"pi-failover\""
fi

# The respawn lines post-build.sh adds run what the package installs.
for helper in run watchdog; do
	if grep -q "/usr/libexec/pi-failover/$helper\$" "$mk" &&
		grep -qF "::respawn:/usr/libexec/pi-failover/$helper'" "$here/board/pi-failover/post-build.sh"; then
		ok "inittab respawns /usr/libexec/pi-failover/$helper, which the package installs"
	else
		fail "post-build.sh's respawn line and pi-failover.mk's install of /usr/libexec/pi-failover/$helper disagree"
	fi
done

fstab=$here/board/pi-failover/rootfs-overlay/etc/fstab
user_gid=$(sed -n '/^define PI_FAILOVER_USERS/,/^endef/p' "$mk" | awk '$1 == "pifailover" { print $4; exit }')
boot_gid=$(awk '$2 == "/boot" { print $4 }' "$fstab" | tr ',' '\n' | sed -n 's/^gid=//p')
if [ -n "$user_gid" ] && [ "$user_gid" = "$boot_gid" ]; then
	ok "user pifailover has gid $user_gid, the group /etc/fstab gives /boot"
else
	fail "PI_FAILOVER_USERS gives pifailover gid '${user_gid}' but /etc/fstab mounts /boot with gid=${boot_gid}"
fi

# ---------------------------------------------------------------------------
section "boot files"
for pair in "${config_txts[@]}"; do
	dc=${pair%%|*}
	cfg=${pair#*|}
	rel=${cfg#"$here"/}
	missing=()
	for line in arm_64bit=1 dtparam=i2c_arm=on dtparam=watchdog=on; do
		grep -qx "$line" "$cfg" || missing+=("$line")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		ok "$rel: arm_64bit=1, dtparam=i2c_arm=on, dtparam=watchdog=on"
	else
		fail "$rel lacks: ${missing[*]}"
	fi
	kernel=$(sed -n 's/^kernel=//p' "$cfg" | tail -n 1)
	if [ "$kernel" = u-boot.bin ]; then
		ok "$rel boots kernel=u-boot.bin (U-Boot, which runs boot.scr and boots a slot)"
	else
		[ -n "$kernel" ] || kernel="(none: the firmware's default kernel8.img)"
		fail "$rel boots kernel=$kernel: it must say kernel=u-boot.bin, the firmware starts U-Boot and U-Boot a slot's kernel"
	fi
	for line in enable_uart=1 dtparam=i2c_arm_baudrate=400000; do
		grep -qx "$line" "$cfg" || fail "$rel lacks $line"
	done
	grep -qx 'dtoverlay=miniuart-bt' "$cfg" &&
		fail "$rel: dtoverlay=miniuart-bt puts Bluetooth on the PL011's clock-bound twin; use dtoverlay=disable-bt"
	start=$(sed -n 's/^start_file=//p' "$cfg" | tail -n 1)
	variant_file=''
	for sym in "${!firmware_start[@]}"; do
		grep -qx "$sym=y" "$dc" && variant_file=${firmware_start[$sym]}
	done
	if [ -n "$start" ] && [ "$start" != "$variant_file" ]; then
		fail "$rel says start_file=$start but $(basename "$dc") installs ${variant_file:-no start*.elf}"
	elif [ -n "$start" ]; then
		ok "$rel starts $start, the firmware variant $(basename "$dc") installs"
	fi
done
for cmdline in $(printf '%s\n' "${cmdline_txts[@]}" | sort -u); do
	rel=${cmdline#"$here"/}
	if [ "$(grep -c . "$cmdline")" -ne 1 ]; then
		fail "$rel must be a single line"
	fi
	words=" $(tr '\n' ' ' < "$cmdline") "
	missing=()
	for w in ' ro ' ' rootwait ' ' console=' ' rootfstype=squashfs '; do
		[[ "$words" == *"$w"* ]] || missing+=("${w# }")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		ok "$rel: ro, rootwait, console=, rootfstype=squashfs"
	else
		fail "$rel lacks: ${missing[*]}"
	fi
	if [[ "$words" == *" root="* ]]; then
		fail "$rel says root=: leave it out, image/boot.cmd adds the root of the slot it boots"
	else
		ok "$rel has no root= (image/boot.cmd adds the slot's)"
	fi
done

# The boot script: the root it gives each slot carries genimage.cfg's disk signature, and
# slot A's partitions are the ones genimage.cfg makes (B's, p5 and p6, S04data makes).
if [ ! -f "$boot_cmd" ]; then
	fail "image/boot.cmd does not exist"
else
	if grep -qF "root=PARTUUID=${disk_sig}-\${root_part}" "$boot_cmd"; then
		ok "image/boot.cmd boots root=PARTUUID=${disk_sig}-\${root_part} (image/genimage.cfg's disk signature)"
	else
		fail "image/boot.cmd does not boot root=PARTUUID=${disk_sig}-\${root_part} (the disk signature of image/genimage.cfg)"
	fi
	slots=$(awk '
		$1 == "setenv" && $2 == "slot" && ($3 == "A" || $3 == "B") { slot = $3 }
		slot != "" && $1 == "setenv" && $2 == "kernel_part" { k[slot] = $3 }
		slot != "" && $1 == "setenv" && $2 == "root_part" { r[slot] = $3 }
		END { for (s in k) print s, k[s], r[s] }' "$boot_cmd" | sort | tr '\n' ' ')
	# The partitions of genimage.cfg's table, in order (the boot state is outside it).
	table_parts=$(awk '
		$1 == "partition" { name = $2; outside = 0 }
		name != "" && $1 == "in-partition-table" && $3 == "false" { outside = 1 }
		name != "" && $1 == "}" { if (!outside) print name; name = "" }' "$genimage_cfg" | tr '\n' ' ')
	if [ "$slots" = "A 2 03 B 5 06 " ] && [ "$table_parts" = "boot kernel-a root-a " ]; then
		ok "image/boot.cmd: slot A kernel p2, root PARTUUID=${disk_sig}-03; slot B kernel p5, root PARTUUID=${disk_sig}-06; genimage.cfg's p2, p3 are kernel-a, root-a"
	else
		fail "image/boot.cmd's slots (slot kernel_part root_part: '${slots}') must be 'A 2 03 B 5 06', on genimage.cfg's partitions 'boot kernel-a root-a' (found '${table_parts}')"
	fi

	# RAUC's slots (the system.conf post-build.sh writes): the same partitions, A and B
	# named as the boot script names them, each kernel the child of its root.
	rauc_slots=$(awk '
		/^\[slot\./ { slot = $0; gsub(/[][]/, "", slot) }
		slot != "" && /^device=/ { sub(/^device=.*-/, ""); d[slot] = $0 }
		slot != "" && /^bootname=/ { sub(/^bootname=/, ""); b[slot] = $0 }
		slot != "" && /^parent=/ { sub(/^parent=/, ""); p[slot] = $0 }
		END { for (s in d) print s, d[s], (s in b ? b[s] : p[s]) }' "$here/board/pi-failover/post-build.sh" |
		sort | tr '\n' ' ')
	want_rauc="slot.kernel.0 02 rootfs.0 slot.kernel.1 05 rootfs.1 slot.rootfs.0 03 A slot.rootfs.1 06 B "
	if [ "$rauc_slots" = "$want_rauc" ]; then
		ok "RAUC's slots (post-build.sh's system.conf) are the boot script's: rootfs.0 = A on -03 with kernel.0 on -02, rootfs.1 = B on -06 with kernel.1 on -05"
	else
		fail "RAUC's slots in post-build.sh's system.conf ('${rauc_slots}') must be '${want_rauc}' (image/boot.cmd's slots)"
	fi

	# The boot state: where U-Boot reads and writes it, where the image puts it, where Linux
	# (libubootenv, RAUC) looks for it, and its size, all the same.
	to_bytes() { # 0x4000, 16384, 16K, 1M
		case "$1" in
		'') echo '' ;;
		*[kK]) echo $((${1%?} * 1024)) ;;
		*M) echo $((${1%M} * 1048576)) ;;
		*) echo $(($1)) ;;
		esac
	}
	cmd_var() { sed -n "s/^setenv $1 \(0x[0-9a-fA-F]*\)\$/\1/p" "$boot_cmd" | head -n 1; }
	blk=$(cmd_var state_blk)
	cnt=$(cmd_var state_cnt)
	state_size=$(cmd_var state_size)
	gen_offset=$(awk '
		$1 == "partition" { name = $2 }
		name == "boot-state" && $1 == "offset" { print $3; exit }' "$genimage_cfg")
	env_size=$(sed -n 's/.*mkenvimage -s \(0x[0-9a-fA-F]*\).*/\1/p' "$repo/image/mkimage.sh" | head -n 1)
	fw_line=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$fw_env" 2>/dev/null | head -n 1)
	read -r fw_dev fw_offset fw_size _ <<<"$fw_line"
	if [ -z "$blk" ] || [ -z "$cnt" ] || [ -z "$state_size" ] || [ -z "$gen_offset" ] || [ -z "$env_size" ]; then
		fail "the boot state: cannot read state_blk/state_cnt/state_size (image/boot.cmd), the boot-state offset (image/genimage.cfg) or mkenvimage -s (image/mkimage.sh)"
	elif [ ! -f "$fw_env" ] || [ -z "$fw_size" ]; then
		fail "rootfs-overlay/etc/fw_env.config is missing or has no 'device offset size' line: fw_printenv/fw_setenv (RAUC) would not find the boot state"
	else
		off=$(to_bytes "$gen_offset")
		size=$(to_bytes "$state_size")
		if [ $((blk * 512)) -eq "$off" ] && [ $((cnt * 512)) -eq "$size" ] &&
			[ "$(to_bytes "$env_size")" -eq "$size" ] &&
			[ "$(to_bytes "$fw_offset")" -eq "$off" ] && [ "$(to_bytes "$fw_size")" -eq "$size" ]; then
			ok "the boot state is $size bytes at $off in image/boot.cmd, image/genimage.cfg, image/mkimage.sh and etc/fw_env.config ($fw_dev)"
		else
			fail "the boot state disagrees: boot.cmd block $blk x $cnt (size $state_size), genimage.cfg offset $gen_offset, mkimage.sh mkenvimage -s $env_size, fw_env.config '$fw_line'"
		fi
	fi
fi
fstab_check() { # MOUNTPOINT TYPE OPTION
	awk -v mp="$1" -v type="$2" -v opt="$3" '
		$1 !~ /^#/ && $2 == mp && $3 == type {
			n = split($4, o, ",")
			for (i = 1; i <= n; i++) if (o[i] == opt) found = 1
		}
		END { exit !found }' "$fstab"
}
if fstab_check / squashfs ro && fstab_check /boot vfat ro && fstab_check /data ext4 rw; then
	ok "etc/fstab: / squashfs ro, /boot vfat ro, /data ext4 rw"
else
	fail "etc/fstab must mount / (squashfs) ro, /boot (vfat) ro and /data (ext4) rw"
fi

# The fragment check the kernel build runs (external.mk): it passes on a config that keeps
# every fragment line, and names the line on one where olddefconfig dropped it.
kcheck=$here/board/pi-failover/kernel-config-check.sh
lxfrag=$here/board/pi-failover/linux.fragment
kdir=$(mktemp -d)
grep -E '^(CONFIG_|# CONFIG_)' "$lxfrag" > "$kdir/kept"
grep -v -x 'CONFIG_SQUASHFS_ZSTD=y' "$kdir/kept" > "$kdir/lost"
echo '# CONFIG_SQUASHFS_ZSTD is not set' >> "$kdir/lost"
if "$kcheck" "$lxfrag" -- "$kdir/kept" >/dev/null 2>&1 &&
	! out=$("$kcheck" "$lxfrag" -- "$kdir/lost" 2>&1) &&
	grep -q "CONFIG_SQUASHFS_ZSTD=y' is lost" <<<"$out"; then
	ok "kernel-config-check.sh passes a config with every fragment line and names a dropped one"
else
	fail "board/pi-failover/kernel-config-check.sh does not tell a kept fragment from a dropped line"
fi
rm -rf "$kdir"
# The same check on a real 6.12 merge (the Raspberry Pi kernel's series): Debian's arm64
# config and Kconfig tree, downloaded once (image/qemu/kernel-fragment.sh).
case "${CHECK_KERNEL:-off}" in
require)
	if out=$("$repo/image/qemu/kernel-fragment.sh" "$lxfrag" 2>&1); then
		ok "linux.fragment survives a merge into Debian's arm64 $(sed -n 's/^KERNEL_SERIES=//p' "$repo/image/qemu/lib.sh") config (olddefconfig)"
	else
		fail "linux.fragment against Debian's 6.12 config (image/qemu/kernel-fragment.sh):"
		printf '%s\n' "$out" | sed 's/^/      /'
	fi
	;;
off) note "CHECK_KERNEL=off: the fragment is not merged into a real 6.12 config" ;;
*) die "CHECK_KERNEL=${CHECK_KERNEL}: off or require" ;;
esac
if grep -q 'LINUX_POST_CONFIGURE_HOOKS += PI_FAILOVER_KERNEL_FRAGMENT_CHECK' "$here/external.mk"; then
	ok "external.mk runs the fragment check after the kernel is configured"
else
	fail "external.mk must add PI_FAILOVER_KERNEL_FRAGMENT_CHECK to LINUX_POST_CONFIGURE_HOOKS"
fi

# The overlay's respawned services: post-build.sh's inittab lines name executable scripts.
for helper in network clock-watch; do
	f=$here/board/pi-failover/rootfs-overlay/usr/libexec/pi-failover/$helper
	if [ -x "$f" ] && grep -qF "::respawn:/usr/libexec/pi-failover/$helper'" "$here/board/pi-failover/post-build.sh"; then
		ok "inittab respawns /usr/libexec/pi-failover/$helper, an executable in the overlay"
	else
		fail "post-build.sh must respawn /usr/libexec/pi-failover/$helper, an executable of rootfs-overlay/"
	fi
done

# ---------------------------------------------------------------------------
section "shellcheck"
scripts=()
while IFS= read -r -d '' f; do
	case "$(head -n 1 "$f")" in
	'#!'*sh) scripts+=("$f") ;;
	*) case "$f" in *.sh) scripts+=("$f") ;; esac ;;
	esac
done < <(find "$here" "$repo/image" -type f ! -path '*/.git/*' -print0 | sort -z)
sc_fails=0
for f in "${scripts[@]}"; do
	if ! out=$(shellcheck -x "$f" 2>&1); then
		fail "shellcheck ${f#"$repo"/}"
		printf '%s\n' "$out" | sed 's/^/      /'
		sc_fails=$((sc_fails + 1))
	fi
done
[ "$sc_fails" -eq 0 ] && ok "shellcheck: ${#scripts[@]} scripts clean"

# ---------------------------------------------------------------------------
section "image layout"
CHECK_IMAGE=${CHECK_IMAGE:-auto}
image_tools=(genimage mkdosfs mcopy mdir mtype mksquashfs sfdisk mkimage mkenvimage)
missing_tools=()
for t in "${image_tools[@]}"; do
	command -v "$t" >/dev/null || missing_tools+=("$t")
done
# skip_or_fail MESSAGE: a missing tool fails with CHECK_IMAGE=require, else is a note.
skip_or_fail() {
	if [ "$CHECK_IMAGE" = require ]; then fail "$1"; else note "skipped: $1"; fi
}
if [ "$CHECK_IMAGE" = off ]; then
	note "CHECK_IMAGE=off: image test skipped"
elif [ "$CHECK_IMAGE" != auto ] && [ "$CHECK_IMAGE" != require ]; then
	die "CHECK_IMAGE=${CHECK_IMAGE}: auto, require or off"
elif [ ${#missing_tools[@]} -gt 0 ]; then
	skip_or_fail "image test needs ${missing_tools[*]} (apt-get install genimage dosfstools mtools squashfs-tools fdisk u-boot-tools)"
elif [ ${#config_txts[@]} -eq 0 ] || [ ${#cmdline_txts[@]} -eq 0 ]; then
	fail "image test: no config.txt/cmdline.txt from the defconfigs"
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/pi-failover-check.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	# Stand-ins for what post-image.sh collects: the firmware, U-Boot and overlays/ for the
	# boot partition, the kernel for slot A's kernel partition.
	mkdir -p "$work/boot/overlays" "$work/kernel" "$work/rootfs/usr/bin"
	cfg=${config_txts[0]#*|}
	cp "$cfg" "$work/boot/config.txt"
	cp "${cmdline_txts[0]}" "$work/boot/cmdline.txt"
	head -c $((600 * 1024)) /dev/urandom > "$work/boot/u-boot.bin"
	start=$(sed -n 's/^start_file=//p' "$cfg" | tail -n 1)
	head -c $((2 * 1024 * 1024)) /dev/urandom > "$work/boot/${start:-start.elf}"
	: > "$work/boot/overlays/README"
	head -c $((9 * 1024 * 1024)) /dev/urandom > "$work/kernel/${boot_kernel:-Image.gz}"
	head -c $((6 * 1024 * 1024)) /dev/urandom > "$work/rootfs/usr/bin/pi-failover"
	if ! mksquashfs "$work/rootfs" "$work/rootfs.squashfs" -noappend -quiet >/dev/null 2>&1; then
		fail "image test: mksquashfs failed"
	elif ! out=$("$repo/image/mkimage.sh" --boot "$work/boot" --kernel "$work/kernel" \
		--rootfs "$work/rootfs.squashfs" --out "$work/out" --work "$work/mk" 2>&1); then
		fail "image/mkimage.sh failed:"
		printf '%s\n' "$out" | tail -n 20 | sed 's/^/      /'
	else
		img=$work/out/pi-failover.img
		size=$(stat -c %s "$img")
		ok "image/mkimage.sh built pi-failover.img, $((size / 1048576)) MiB with a 9 MiB stand-in kernel and a 6 MiB stand-in root"
		table=$(sfdisk -d "$img" 2>/dev/null)
		parts=$(grep -c '^[^ ]*img[0-9] :' <<<"$table")
		label_id=$(sed -n 's/^label-id: 0x//p' <<<"$table")
		part_field() { # N FIELD: start or size (in sectors) of partition N
			grep "img$1 :" <<<"$table" | sed -n "s/.*$2= *\([0-9]*\).*/\1/p"
		}
		p1=$(grep 'img1 :' <<<"$table")
		p2=$(grep 'img2 :' <<<"$table")
		p3=$(grep 'img3 :' <<<"$table")
		p1_start=$(part_field 1 start)
		p2_start=$(part_field 2 start)
		p3_start=$(part_field 3 start)
		p3_size=$(part_field 3 size)
		mib=2048 # sectors
		if [ "$parts" -eq 3 ] && [ "$label_id" = "$disk_sig" ] &&
			[[ "$p1" == *"type=c,"* ]] && [[ "$p1" == *bootable* ]] && [ "$p1_start" -eq $((4 * mib)) ] &&
			[[ "$p2" == *"type=c" ]] &&
			[[ "$p3" == *"type=83" ]] && [ "$p3_size" -eq $((64 * mib)) ]; then
			ok "MBR 0x$label_id: p1 boot FAT (0x0C, bootable) at 4 MiB, p2 slot A's kernel FAT (0x0C), p3 slot A's root (0x83, 64 MiB)"
		else
			fail "unexpected partition table (want 3 partitions, signature 0x$disk_sig, p1 type c bootable at 4 MiB, p2 type c, p3 type 83 of 64 MiB):"
			printf '%s\n' "$table" | sed 's/^/      /'
		fi
		squashfs_size=$(stat -c %s "$work/rootfs.squashfs")
		if [ "$size" -eq $((p3_start * 512 + squashfs_size)) ]; then
			ok "the image file ends where the squashfs ends (p3 is 64 MiB in the table only)"
		else
			fail "the image file is $size bytes, not p3's start + the squashfs ($((p3_start * 512)) + $squashfs_size)"
		fi
		magic=$(dd if="$img" bs=512 skip="$p3_start" count=1 2>/dev/null | head -c 4)
		if [ "$magic" = hsqs ]; then
			ok "p3 holds the squashfs root"
		else
			fail "p3 does not start with a squashfs superblock (hsqs)"
		fi

		fat="$img@@$((p1_start * 512))"
		listing=$(MTOOLS_SKIP_CHECK=1 mdir -i "$fat" -b :: 2>/dev/null)
		want=(boot.scr pi-failover.toml README-FIRST.txt config.txt cmdline.txt u-boot.bin)
		[ -d "$work/boot/overlays" ] && want+=(overlays)
		missing=()
		for f in "${want[@]}"; do
			grep -Eq "^::/$f/?\$" <<<"$listing" || missing+=("$f")
		done
		if [ ${#missing[@]} -eq 0 ]; then
			ok "boot FAT (p1) holds ${want[*]}"
		else
			fail "boot FAT (p1) lacks: ${missing[*]}"
		fi
		if grep -Eq '^::/(Image(\.gz)?|initrd\.img)$' <<<"$listing"; then
			fail "boot FAT (p1) holds a kernel: it belongs on a slot's kernel partition"
		fi
		if MTOOLS_SKIP_CHECK=1 mtype -i "$fat" ::/pi-failover.toml 2>/dev/null |
			cmp -s - "$repo/examples/pi-failover.toml"; then
			ok "boot FAT pi-failover.toml is examples/pi-failover.toml"
		else
			fail "boot FAT pi-failover.toml differs from examples/pi-failover.toml"
		fi
		# boot.scr: mkimage's 64-byte header and 8-byte length table, then boot.cmd as it is.
		if MTOOLS_SKIP_CHECK=1 mtype -i "$fat" ::/boot.scr 2>/dev/null > "$work/boot.scr" &&
			mkimage -l "$work/boot.scr" 2>/dev/null | grep -q 'Script' &&
			tail -c +73 "$work/boot.scr" | cmp -s - "$boot_cmd"; then
			ok "boot FAT boot.scr is a U-Boot script image of image/boot.cmd"
		else
			fail "boot FAT boot.scr is not image/boot.cmd compiled by mkimage -T script"
		fi

		kfat="$img@@$((p2_start * 512))"
		klisting=$(MTOOLS_SKIP_CHECK=1 mdir -i "$kfat" -b :: 2>/dev/null)
		if grep -qx "::/${boot_kernel:-Image.gz}" <<<"$klisting" &&
			MTOOLS_SKIP_CHECK=1 mtype -i "$kfat" "::/${boot_kernel:-Image.gz}" 2>/dev/null |
			cmp -s - "$work/kernel/${boot_kernel:-Image.gz}"; then
			ok "kernel FAT (p2) holds ${boot_kernel:-Image.gz}, byte for byte"
		else
			fail "kernel FAT (p2) does not hold the stand-in ${boot_kernel:-Image.gz}: $(tr '\n' ' ' <<<"$klisting")"
		fi

		# The boot state as Linux reads it: the overlay's fw_env.config with the image file
		# for the card.
		if ! command -v fw_printenv >/dev/null; then
			skip_or_fail "boot-state read-back needs fw_printenv (apt-get install libubootenv-tool)"
		elif [ -z "${fw_size:-}" ]; then
			fail "boot-state read-back: no 'device offset size' line in rootfs-overlay/etc/fw_env.config"
		else
			printf '%s %s %s\n' "$img" "$fw_offset" "$fw_size" > "$work/fw_env.config"
			state=$(fw_printenv -c "$work/fw_env.config" 2>&1 | sort | tr '\n' ';')
			if [ "$state" = "BOOT_A_LEFT=3;BOOT_B_LEFT=3;BOOT_ORDER=A B;" ]; then
				ok "boot state at $fw_offset (fw_printenv, the overlay's fw_env.config): BOOT_ORDER=A B, BOOT_A_LEFT=3, BOOT_B_LEFT=3"
			else
				fail "boot state at $fw_offset reads '$state', not BOOT_ORDER=A B, BOOT_A_LEFT=3, BOOT_B_LEFT=3 (and nothing else)"
			fi
		fi

		if [ "$size" -le $((64 * 1048576)) ]; then
			ok "pi-failover.img is $size bytes, at most 64 MiB"
		else
			fail "pi-failover.img is $size bytes, more than 64 MiB"
		fi
		root_budget=$((64 - p3_start / mib))
		note "root filesystem budget: ${root_budget} MiB (64 MiB - $((p3_start / mib)) MiB before the root partition: 4 MiB gap and boot state, $(((p2_start - p1_start) / mib)) MiB boot, $(((p3_start - p2_start) / mib)) MiB kernel)"
	fi
fi

# ---------------------------------------------------------------------------
section "vendored crates"
locked=$(python3 "$here/toml-get.py" --lock "$repo/Cargo.lock" | sort -u)
crate_dirs() { # DIR...: "name version dir" of every crate source below DIR
	[ $# -gt 0 ] || return 0
	python3 "$here/toml-get.py" --crates "$@"
}
# holds_every_crate DIR LABEL: DIR (a cargo vendor directory) holds every crate of Cargo.lock.
holds_every_crate() {
	local present absent
	present=$(crate_dirs "$1"/*/ | cut -d' ' -f1,2 | sort -u)
	absent=$(comm -23 <(printf '%s\n' "$locked") <(printf '%s\n' "$present"))
	if [ -z "$absent" ]; then
		ok "$2 holds all $(grep -c . <<<"$locked") crates of Cargo.lock"
	else
		fail "$2 lacks $(grep -c . <<<"$absent") crates of Cargo.lock, e.g. $(head -n 3 <<<"$absent" | tr '\n' ' ')"
	fi
}
if [ -d "$repo/vendor" ]; then
	holds_every_crate "$repo/vendor" "vendor/ (refresh it with: cargo vendor --locked vendor)"
else
	note "no vendor/: a working copy built with PI_FAILOVER_OVERRIDE_SRCDIR runs 'cargo vendor' and needs crates.io once; the release tarball (release.sh) carries its crates (docs/building-the-image.md)"
fi

# ---------------------------------------------------------------------------
section "source release (release.sh)"
case "${CHECK_RELEASE:-off}" in
off) note "CHECK_RELEASE=off: release.sh not run" ;;
require)
	rel=$(mktemp -d)
	hashfile=$rel/pi-failover.hash
	if ! one=$("$here/release.sh" --out "$rel/one" --hash-file "$hashfile" 2>&1) ||
		! two=$("$here/release.sh" --out "$rel/two" --hash-file "$hashfile" 2>&1); then
		fail "release.sh failed: ${one:-} ${two:-}"
	else
		name=$(basename "$one")
		if cmp -s "$one" "$two"; then
			ok "release.sh is reproducible: $name twice, the same $(stat -c %s "$one") bytes"
		else
			fail "release.sh made two different $name from one commit"
		fi
		sum=$(sha256sum "$one" | cut -d' ' -f1)
		if grep -qx "sha256  $sum  $name" "$hashfile"; then
			ok "pi-failover.hash holds the tarball's sha256 (and the license files')"
		else
			fail "pi-failover.hash does not hold $name's sha256 $sum"
		fi
		top=$(tar -tzf "$one" | cut -d/ -f1 | sort -u)
		entries=$(tar -tzf "$one" | cut -d/ -f2 | sort -u | grep -v '^$' | tr '\n' ' ')
		if [ "$top" = "${name%.tar.gz}" ] &&
			[ "$entries" = ".cargo Cargo.lock Cargo.toml LICENSE-APACHE LICENSE-MIT README.md VENDOR build.rs src " ]; then
			ok "the tarball holds ${name%.tar.gz}/ with the crate's files, VENDOR/ and .cargo/ only"
		else
			fail "the tarball's layout is wrong: top '$top', entries '$entries'"
		fi
		mkdir -p "$rel/x"
		tar -xzf "$one" -C "$rel/x"
		src=$rel/x/${name%.tar.gz}
		holds_every_crate "$src/VENDOR" "the release's VENDOR/"
		# The proof that a build from the downloaded release needs no network: every
		# dependency resolves from VENDOR/ with cargo offline, in an empty cargo home, and
		# (as root) in a network namespace with no interface but loopback.
		resolve=(env CARGO_HOME="$rel/cargo-home" cargo metadata --offline --locked --format-version 1
			--manifest-path "$src/Cargo.toml")
		how="offline, empty cargo home"
		if [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
			resolve=(unshare -n "${resolve[@]}")
			how="$how, no network (unshare -n)"
		fi
		if out=$(cd "$src" && "${resolve[@]}" 2>&1 >/dev/null); then
			ok "the unpacked release resolves every dependency: $how"
		else
			fail "the unpacked release does not resolve offline ($how):"
			printf '%s\n' "$out" | tail -n 5 | sed 's/^/      /'
		fi
	fi
	rm -rf "$rel"
	;;
*) die "CHECK_RELEASE=${CHECK_RELEASE}: off or require" ;;
esac

# ---------------------------------------------------------------------------
section "Buildroot"
if [ -z "${BUILDROOT:-}" ]; then
	note "BUILDROOT is not set: make <defconfig> and utils/check-package not run"
else
	if [ ! -f "$BUILDROOT/Makefile" ] || [ ! -f "$BUILDROOT/package/pkg-cargo.mk" ]; then
		die "BUILDROOT=$BUILDROOT is not a Buildroot checkout (no Makefile, package/pkg-cargo.mk)"
	fi
	checker=${BR_EXTERNAL_CHECK:-$repo/../shared/tools/br-external-check}
	[ -f "$checker" ] ||
		die "the Buildroot-backed check needs $checker (../shared/tools/br-external-check next to the repository), which is missing; set BR_EXTERNAL_CHECK to its path"
	if [ -z "${PYTHON:-}" ]; then
		for py in python3 /usr/bin/python3; do
			if command -v "$py" >/dev/null && "$py" -c 'import magic, flake8' 2>/dev/null; then
				PYTHON=$py
				break
			fi
		done
	fi
	[ -n "${PYTHON:-}" ] ||
		die "no python3 with the 'magic' and 'flake8' modules for utils/check-package (apt-get install python3-magic python3-flake8)"
	export PYTHON
	br_version=$(sed -n 's/^export BR2_VERSION := //p' "$BUILDROOT/Makefile")
	note "Buildroot $br_version at $BUILDROOT"
	# The release the tree is built and checked with, in one place (docs/building-the-image.md).
	pinned=$(head -n 1 "$here/buildroot-version")
	if [ "$br_version" = "$pinned" ]; then
		ok "Buildroot $br_version is the pinned release (buildroot-overlay/buildroot-version)"
	else
		fail "BUILDROOT is $br_version but buildroot-overlay/buildroot-version pins $pinned: check out tag $pinned (or update the pin after checking the tree with the new one)"
	fi

	for dc in "${defconfigs[@]}"; do
		d=$(basename "$dc")
		if out=$(bash "$checker" --lint --rsync "$here" "$d" 2>&1); then
			ok "br-external-check --lint --rsync $d"
		else
			fail "br-external-check --lint --rsync $d:"
		fi
		printf '%s\n' "$out" | grep -v '^$' | sed 's/^/      /'

		# The kernel Buildroot's Raspberry Pi defconfig pins, with its hash.
		theirs=$BUILDROOT/configs/raspberrypi${d#pifailover_rpi}
		# The Pi 5 has no 32-bit defconfig, so Buildroot's has no _64 in its name.
		[ -f "$theirs" ] || theirs=${theirs/_64_defconfig/_defconfig}
		ours_tb=$(defconfig_value "$dc" BR2_LINUX_KERNEL_CUSTOM_TARBALL_LOCATION)
		if [ ! -f "$theirs" ]; then
			fail "$d: Buildroot has no $(basename "$theirs") to compare the kernel with"
		elif [ "$ours_tb" != "$(defconfig_value "$theirs" BR2_LINUX_KERNEL_CUSTOM_TARBALL_LOCATION)" ]; then
			fail "$d: kernel tarball differs from $(basename "$theirs")'s; copy its BR2_LINUX_KERNEL_CUSTOM_TARBALL_LOCATION"
		elif ! grep -qF " ${ours_tb##*/}" "$BUILDROOT/board/raspberrypi/patches/linux/linux.hash" 2>/dev/null; then
			fail "$d: board/raspberrypi/patches/linux/linux.hash has no hash for ${ours_tb##*/}"
		else
			ok "$d: kernel ${ours_tb##*/} is $(basename "$theirs")'s, hash in board/raspberrypi/patches"
		fi
	done

	# Buildroot's Rust against the crates' minimum Rust version.
	br_rust=$(sed -n 's/^RUST_BIN_VERSION = //p' "$BUILDROOT/package/rust-bin/rust-bin.mk")
	msrv=$(toml_value "$repo/Cargo.toml" package rust-version)
	msrv_from="Cargo.toml"
	if [ -d "$repo/vendor" ]; then
		srcs=("$repo"/vendor/*/)
		where=vendor/
	else
		srcs=()
		for r in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
			[ -d "$r" ] || continue
			while read -r n v; do
				[ -d "$r$n-$v" ] && srcs+=("$r$n-$v/")
			done <<<"$locked"
		done
		where="the cargo registry"
	fi
	found=0
	for s in "${srcs[@]}"; do
		[ -f "${s}Cargo.toml" ] || continue
		found=$((found + 1))
		rv=$(toml_value "${s}Cargo.toml" package rust-version)
		if [ -n "$rv" ] && ! version_ge "${msrv:-0}" "$rv"; then
			msrv=$rv
			msrv_from=$(basename "$s")
		fi
	done
	total=$(grep -c . <<<"$locked")
	[ "$found" -lt "$total" ] &&
		note "rust-version read from $found of $total locked crates ($where); the others are not at hand"
	if [ -z "$br_rust" ]; then
		fail "cannot read RUST_BIN_VERSION from $BUILDROOT/package/rust-bin/rust-bin.mk"
	elif version_ge "$br_rust" "${msrv:-0}"; then
		ok "Buildroot's Rust $br_rust >= the crates' minimum ${msrv:-?} ($msrv_from)"
	else
		fail "Buildroot $br_version ships Rust $br_rust, but $msrv_from needs Rust $msrv: use a newer Buildroot"
	fi
fi

echo
if [ "$fails" -eq 0 ]; then
	echo "all checks passed"
	exit 0
fi
echo "$fails check(s) failed"
exit 1
