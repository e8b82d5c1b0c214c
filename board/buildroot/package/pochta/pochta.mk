################################################################################
#
# pochta: the prebuilt static binary (scripts/build-firmware)
#
################################################################################

POCHTA_BINARY = $(call qstrip,$(BR2_PACKAGE_POCHTA_BINARY))
POCHTA_VERSION = prebuilt
POCHTA_SITE = $(patsubst %/,%,$(dir $(POCHTA_BINARY)))
POCHTA_SITE_METHOD = local
POCHTA_LICENSE = AGPL-3.0-or-later

define POCHTA_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/$(notdir $(POCHTA_BINARY)) $(TARGET_DIR)/usr/bin/pochta
endef

$(eval $(generic-package))
