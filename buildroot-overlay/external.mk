include $(sort $(wildcard $(BR2_EXTERNAL_PIFAILOVER_PATH)/package/*/*.mk))

# Every line of the kernel config fragments must survive into the final
# kernel config: olddefconfig drops an option whose dependencies are unmet
# without a word (board/pi-failover/kernel-config-check.sh says why that
# matters). Fragment paths are as the defconfig gives them, relative to
# Buildroot's top directory, where make runs.
define PI_FAILOVER_KERNEL_FRAGMENT_CHECK
	$(BR2_EXTERNAL_PIFAILOVER_PATH)/board/pi-failover/kernel-config-check.sh \
		$(call qstrip,$(BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES)) \
		-- $(LINUX_DIR)/.config
endef
LINUX_POST_CONFIGURE_HOOKS += PI_FAILOVER_KERNEL_FRAGMENT_CHECK
