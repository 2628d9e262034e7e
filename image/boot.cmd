# pi-failover's U-Boot boot script: boots slot A or B with RAUC's boot
# counting. Compiled into boot.scr on the FAT partition by image/mkimage.sh
# (mkimage -T script); U-Boot's distro boot finds it there and runs it with
# devtype/devnum set to the card (mmc on a Pi, virtio under qemu -M virt).
# The same script runs on every board and in the booted-image test.
#
# The slots (image/README.md, "Slots"):
#   A: kernel partition 2 (FAT: Image.gz, initrd.img if any), root PARTUUID 5049f0a1-03
#   B: kernel partition 5,                                    root PARTUUID 5049f0a1-06
#
# The boot state is RAUC's U-Boot variables BOOT_ORDER ("A B": try A first),
# BOOT_A_LEFT and BOOT_B_LEFT (tries left), kept in a raw 16 KiB U-Boot
# environment block at 1 MiB into the card, before the first partition.
# Linux reads and writes the same block with libubootenv's fw_setenv
# (/etc/fw_env.config), which is how RAUC marks a slot good or switches
# the order. Each boot takes one try from the slot it boots, and writes
# that down before the kernel starts: a slot that never gets marked good
# (RAUC resets its count to 3) is left after 3 boots for the next in
# BOOT_ORDER. A block that cannot be read or fails its CRC (a write cut
# by a power loss) gives the defaults: A then B, 3 tries each.

setenv state_blk 0x800
setenv state_cnt 0x20
setenv state_size 0x4000
setenv state_addr ${pxefile_addr_r}

setenv BOOT_ORDER
setenv BOOT_A_LEFT
setenv BOOT_B_LEFT
# Block reads and writes go to the interface's current device: the card's.
${devtype} dev ${devnum}
if ${devtype} read ${state_addr} ${state_blk} ${state_cnt} && env import -c ${state_addr} ${state_size} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT; then
	echo "pi-failover: boot state: order ${BOOT_ORDER}, A ${BOOT_A_LEFT} tries left, B ${BOOT_B_LEFT}"
else
	echo "pi-failover: no readable boot state: A then B, 3 tries each"
fi
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv slot
for s in ${BOOT_ORDER}; do
	if test -n "${slot}"; then
		true
	elif test "${s}" = "A" && test ${BOOT_A_LEFT} -gt 0; then
		setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
		setenv slot A
		setenv kernel_part 2
		setenv root_part 03
	elif test "${s}" = "B" && test ${BOOT_B_LEFT} -gt 0; then
		setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
		setenv slot B
		setenv kernel_part 5
		setenv root_part 06
	fi
done
if test -z "${slot}"; then
	# Never a Pi that stops trying: every slot gets its tries back, and the
	# order decides again.
	echo "pi-failover: no slot has tries left: 3 each again"
	setenv BOOT_A_LEFT 3
	setenv BOOT_B_LEFT 3
fi
env export -c -s ${state_size} ${state_addr} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
${devtype} write ${state_addr} ${state_blk} ${state_cnt}
if test -z "${slot}"; then
	reset
fi

# The kernel's command line: cmdline.txt from the FAT partition (the file
# the Pi firmware reads too), then the slot's root and name.
load ${devtype} ${devnum}:1 ${state_addr} cmdline.txt
setexpr cmdline_end ${state_addr} + ${filesize}
mw.b ${cmdline_end} 0 1
# Its line ends with a newline, which is not part of the command line.
setexpr cmdline_last ${cmdline_end} - 1
setexpr.b last_byte *${cmdline_last}
if test "${last_byte}" = "a"; then
	mw.b ${cmdline_last} 0 1
fi
setexpr.s cmdline *${state_addr}
setenv bootargs "${cmdline} root=PARTUUID=5049f0a1-${root_part} rauc.slot=${slot}"
echo "pi-failover: booting slot ${slot}: ${bootargs}"

# The device tree: the Pi firmware's (with config.txt's overlays applied),
# else the one U-Boot runs on (qemu's).
if test -n "${fdt_addr}"; then
	setenv fdt ${fdt_addr}
else
	setenv fdt ${fdtcontroladdr}
fi
# booti unpacks a gzip-compressed Image through kernel_comp_addr_r: 128 MiB
# past the kernel unless the board's environment says where.
if test -z "${kernel_comp_addr_r}"; then
	setexpr kernel_comp_addr_r ${kernel_addr_r} + 0x8000000
fi
# An initramfs (the qemu test's kernel has one) goes 96 MiB past the kernel,
# clear of it once unpacked (the boards' ramdisk_addr_r is not: the Pi's is
# 38 MiB in).
setexpr initrd_addr ${kernel_addr_r} + 0x6000000
if load ${devtype} ${devnum}:${kernel_part} ${kernel_addr_r} Image.gz; then
	setenv kernel_comp_size ${filesize}
	if load ${devtype} ${devnum}:${kernel_part} ${initrd_addr} initrd.img; then
		booti ${kernel_addr_r} ${initrd_addr}:${filesize} ${fdt}
	else
		booti ${kernel_addr_r} - ${fdt}
	fi
fi
# Only reached when the slot has no kernel or it did not start: the next
# boot counts this one and moves on when the slot's tries are gone.
echo "pi-failover: slot ${slot} did not boot"
reset
