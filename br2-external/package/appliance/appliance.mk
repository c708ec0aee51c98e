################################################################################
#
# appliance
#
################################################################################

# The workspace version (Cargo.toml [workspace.package]); check.sh compares.
APPLIANCE_VERSION = 0.1.0
# The Cargo workspace root: the repository that holds this br2-external.
APPLIANCE_SITE = $(BR2_EXTERNAL_APPLIANCE_PATH)/..
APPLIANCE_SITE_METHOD = local
APPLIANCE_LICENSE = GPL-2.0
# cargo build/install run in the member's directory; Cargo.lock and
# .cargo/config.toml come from the workspace root above it.
APPLIANCE_SUBDIR = appliance
# Build products and outputs that may live inside the repository (an O=
# directory there is best called output/) stay out of the copy.
APPLIANCE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /output --exclude /images/out \
	--exclude /images/build --exclude /tests/artifacts \
	--exclude node_modules

# A local source is not vendored by Buildroot (vendoring happens after a
# download): fetch the locked crates into the shared cargo home, after
# which the build runs with --offline. Nothing is fetched when they are
# all there already.
define APPLIANCE_FETCH_CRATES
	cd $(APPLIANCE_SRCDIR) && \
	$(TARGET_MAKE_ENV) $(PKG_CARGO_ENV) \
		cargo fetch --locked --manifest-path Cargo.toml
endef
APPLIANCE_PRE_CONFIGURE_HOOKS += APPLIANCE_FETCH_CRATES

$(eval $(cargo-package))
