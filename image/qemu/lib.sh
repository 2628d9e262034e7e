# shellcheck shell=bash
# Sourced by the qemu boot-test scripts in image/qemu/: where their work
# directory is, and the private apt state they fetch Debian packages with.
#
# PI_FAILOVER_QEMU_WORK  the work directory (default: target/qemu-image in
#                        the repository, gitignored like the rest of target/)

qemu_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$qemu_dir/../.." && pwd)
work=${PI_FAILOVER_QEMU_WORK:-$repo/target/qemu-image}

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

note() {
	echo "${0##*/}: $*" >&2
}

# need TOOL PACKAGE: fail with the install command when TOOL is missing.
need() {
	command -v "$1" >/dev/null || die "$1 not found: apt-get install $2"
}

# apt-get and apt-cache on a private state under $work/apt, for arm64 and
# the host's architecture: the system's sources plus the release's
# backports (backports_source; the 6.12 kernel's series and qemu 10 come
# from there), but not its package lists, its dpkg database or its
# architectures (no dpkg --add-architecture).
host_arch() {
	dpkg --print-architecture
}

apt_opts() {
	local a=$work/apt
	printf '%s\n' \
		-o "Dir::State=$a/state" \
		-o "Dir::State::status=$a/state/status" \
		-o "Dir::Cache=$a/cache" \
		-o "Dir::Etc::SourceList=$a/backports.list" \
		-o "APT::Architecture=arm64" \
		-o "APT::Architectures::=arm64" \
		-o "APT::Architectures::=$(host_arch)" \
		-o "APT::Sandbox::User=$(id -un)" \
		-o "Debug::NoLocking=1"
}

# The host's Debian release (bookworm), read rather than sourced.
host_codename() {
	sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d '"'
}

# The host release's backports, in the private apt state's own source list
# (Dir::Etc::SourceList replaces sources.list only: the sources.list.d
# files of the system still apply).
backports_source() {
	local codename
	codename=$(host_codename)
	[ -n "$codename" ] || die "cannot tell the Debian release from /etc/os-release"
	mkdir -p "$work/apt"
	printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s-backports main\n' \
		"$codename" > "$work/apt/backports.list"
}

# The Raspberry Pi kernel's series (raspberrypi/linux rpi-6.12.y, what
# Buildroot's Pi defconfigs build): the booted test runs the same one, and
# the kernel fragment is checked against it (kernel-fragment.sh).
KERNEL_SERIES=6.12

# private_apt_lists [REFRESH]: the private state's directories and package
# lists, updated when REFRESH is 1 or they are missing.
private_apt_lists() {
	mkdir -p "$work/apt/state/lists/partial" "$work/apt/cache/archives/partial"
	touch "$work/apt/state/status"
	backports_source
	if [ "${1:-0}" -eq 1 ] || ! ls "$work"/apt/state/lists/*-backports_*_Packages* >/dev/null 2>&1; then
		note "updating the private package lists (arm64 and $(host_arch))"
		private_apt_get update >/dev/null
	fi
}

# The kernel's package name carries its ABI, which moves with security
# updates: take whatever linux-image-$KERNEL_SERIES-arm64 depends on today.
kernel_package() {
	private_apt_cache depends "linux-image-$KERNEL_SERIES-arm64" |
		sed -n 's/^[[:space:]]*Depends:[[:space:]]*\(linux-image-[0-9][^[:space:]]*-arm64\)[[:space:]]*$/\1/p' |
		head -n 1
}

private_apt_get() {
	local opts
	mapfile -t opts < <(apt_opts)
	apt-get -q "${opts[@]}" "$@"
}

private_apt_cache() {
	local opts
	mapfile -t opts < <(apt_opts)
	apt-cache "${opts[@]}" "$@"
}

# Whether the qemu-system-aarch64 on PATH, if any, can boot every machine
# the test boots: raspi4b arrived in qemu 9.0 (bookworm's own qemu is 7.2).
path_qemu_will_do() {
	command -v qemu-system-aarch64 >/dev/null &&
		qemu-system-aarch64 -machine help 2>/dev/null | grep -q '^raspi4b '
}

# The qemu-system-aarch64 to run, one word per line: the one on PATH if it
# will do, else the one fetch.sh extracted (with -L for its data directory).
qemu_command() {
	if path_qemu_will_do; then
		command -v qemu-system-aarch64
	elif [ -x "$work/qemu/usr/bin/qemu-system-aarch64" ]; then
		printf '%s\n' "$work/qemu/usr/bin/qemu-system-aarch64" -L "$work/qemu/usr/share/qemu"
	else
		return 1
	fi
}
