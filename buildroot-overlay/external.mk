include $(sort $(wildcard $(BR2_EXTERNAL_PIFAILOVER_PATH)/package/*/*.mk))
