include $(sort $(wildcard $(BR2_EXTERNAL_POCHTA_PATH)/package/*/*.mk))
