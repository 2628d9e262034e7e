#!/bin/sh
#
# Fails when a line of the kernel config fragments did not survive into the
# final kernel .config. Buildroot merges fragments with merge_config.sh -m
# and then runs olddefconfig, which drops any option whose dependencies are
# not met without a word: a lost CONFIG_SQUASHFS_ZSTD=y is a Pi that cannot
# mount its root, a lost CONFIG_IPV6=y one that IPv6 readers cannot reach.
#
# Usage: kernel-config-check.sh FRAGMENT... -- CONFIG
#
# Run by external.mk after the kernel is configured (LINUX_POST_CONFIGURE_
# HOOKS), and by check.sh on a config built to fail it.

set -eu

fragments=
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	fragments="$fragments $1"
	shift
done
if [ "${1:-}" != "--" ] || [ $# -ne 2 ]; then
	echo "usage: $0 FRAGMENT... -- CONFIG" >&2
	exit 2
fi
config=$2

lost=0
for fragment in $fragments; do
	[ -r "$fragment" ] || {
		echo "kernel-config-check: cannot read $fragment" >&2
		exit 2
	}
	while IFS= read -r line || [ -n "$line" ]; do
		case "$line" in
		CONFIG_*=*)
			option=${line%%=*}
			if ! grep -qxF -- "$line" "$config"; then
				now=$(grep -E "^($option=|# $option is not set)" "$config" || true)
				echo "kernel-config-check: ${fragment##*/}: '$line' is lost: the final config has '${now:-nothing}'" >&2
				lost=$((lost + 1))
			fi
			;;
		"# CONFIG_"*" is not set")
			option=${line#"# "}
			option=${option%% *}
			if grep -qE "^$option=" "$config"; then
				echo "kernel-config-check: ${fragment##*/}: '$line' is lost: the final config has '$(grep -E "^$option=" "$config")'" >&2
				lost=$((lost + 1))
			fi
			;;
		esac
	done < "$fragment"
done
if [ "$lost" -gt 0 ]; then
	echo "kernel-config-check: $lost fragment line(s) lost in $config: their dependencies are not met (see 'make linux-menuconfig', search for the option)" >&2
	exit 1
fi
echo "kernel-config-check: every fragment line is in $config"
