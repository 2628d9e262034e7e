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
# the host's architecture: the system's sources, but not its package lists,
# its dpkg database or its architectures (no dpkg --add-architecture).
host_arch() {
	dpkg --print-architecture
}

apt_opts() {
	local a=$work/apt
	printf '%s\n' \
		-o "Dir::State=$a/state" \
		-o "Dir::State::status=$a/state/status" \
		-o "Dir::Cache=$a/cache" \
		-o "APT::Architecture=arm64" \
		-o "APT::Architectures::=arm64" \
		-o "APT::Architectures::=$(host_arch)" \
		-o "APT::Sandbox::User=$(id -un)" \
		-o "Debug::NoLocking=1"
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

# The qemu-system-aarch64 to run, one word per line: the one on PATH if
# any, else the one fetch.sh extracted (with -L for its data directory).
qemu_command() {
	if command -v qemu-system-aarch64 >/dev/null; then
		command -v qemu-system-aarch64
	elif [ -x "$work/qemu/usr/bin/qemu-system-aarch64" ]; then
		printf '%s\n' "$work/qemu/usr/bin/qemu-system-aarch64" -L "$work/qemu/usr/share/qemu"
	else
		return 1
	fi
}
