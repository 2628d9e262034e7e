#!/bin/sh
#
# What post-build.sh and post-image.sh read from the build, in one place so
# they agree: the version, the board, the compatible a bundle must carry,
# and the configuration's values. Sourced, with BR2_CONFIG (the build's
# .config) and BR2_EXTERNAL_PIFAILOVER_PATH set by Buildroot.

: "${BR2_CONFIG:?run by Buildroot, which names its configuration in BR2_CONFIG}"
: "${BR2_EXTERNAL_PIFAILOVER_PATH:?run by Buildroot with the pi-failover tree}"

# config_value KEY: a string option of the configuration, with
# $(BR2_EXTERNAL_PIFAILOVER_PATH) expanded as Buildroot expands it.
config_value() {
	sed -n "s/^$1=\"\(.*\)\"\$/\1/p" "$BR2_CONFIG" |
		sed "s|\$(BR2_EXTERNAL_PIFAILOVER_PATH)|$BR2_EXTERNAL_PIFAILOVER_PATH|g"
}

# The appliance's version (the package's).
PI_FAILOVER_VERSION=$(sed -n 's/^PI_FAILOVER_VERSION = //p' \
	"$BR2_EXTERNAL_PIFAILOVER_PATH/package/pi-failover/pi-failover.mk")

# The board: the directory of the config.txt the firmware package installs
# (rpi3-64, rpi4-64, rpi5-64).
PI_FAILOVER_BOARD=$(config_value BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE |
	sed -n 's|.*/board/pi-failover/\([^/]*\)/config.txt$|\1|p')
if [ -z "$PI_FAILOVER_BOARD" ]; then
	echo "no board/pi-failover/<board>/config.txt in $BR2_CONFIG" >&2
	exit 1
fi

# RAUC's compatible: /etc/rauc/system.conf's and every bundle's for this
# board, so a bundle for another board is refused.
PI_FAILOVER_COMPATIBLE=pi-failover-$PI_FAILOVER_BOARD

# Used by the scripts that source this file.
export PI_FAILOVER_VERSION PI_FAILOVER_BOARD PI_FAILOVER_COMPATIBLE
