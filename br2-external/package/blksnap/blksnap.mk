################################################################################
#
# blksnap
#
################################################################################

# The workspace version (Cargo.toml [workspace.package]); check.sh compares.
BLKSNAP_VERSION = 0.1.0
BLKSNAP_SITE = $(BR2_EXTERNAL_APPLIANCE_PATH)/../kmod
BLKSNAP_SITE_METHOD = local
BLKSNAP_LICENSE = GPL-2.0
# Objects left by a host build of kmod/ (make -C kmod) must not reach Kbuild.
BLKSNAP_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude '*.o' --exclude '*.ko' --exclude '*.mod' \
	--exclude '*.mod.c' --exclude '.*.cmd' --exclude Module.symvers \
	--exclude modules.order --exclude .tmp_versions

# The bio hook: an ftrace_ops with FTRACE_OPS_FL_IPMODIFY on
# submit_bio_noacct(). On x86_64 the WITH_REGS/WITH_ARGS variants follow
# from DYNAMIC_FTRACE.
define BLKSNAP_LINUX_CONFIG_FIXUPS
	$(call KCONFIG_ENABLE_OPT,CONFIG_FTRACE)
	$(call KCONFIG_ENABLE_OPT,CONFIG_FUNCTION_TRACER)
	$(call KCONFIG_ENABLE_OPT,CONFIG_DYNAMIC_FTRACE)
endef

$(eval $(kernel-module))
$(eval $(generic-package))
