################################################################################
#
# pi-failover
#
################################################################################

# The crate is the repository this BR2_EXTERNAL tree lives in: it is built
# from the working copy (rsynced into the build directory), never
# downloaded. check.sh keeps the version equal to Cargo.toml's.
PI_FAILOVER_VERSION = 0.1.0
PI_FAILOVER_SITE = $(realpath $(BR2_EXTERNAL_PIFAILOVER_PATH)/..)
PI_FAILOVER_SITE_METHOD = local
PI_FAILOVER_LICENSE = Apache-2.0 or MIT
PI_FAILOVER_LICENSE_FILES = LICENSE-APACHE LICENSE-MIT

# Only Cargo.toml, Cargo.lock, build.rs, src/ and (when present) vendor/ are
# needed. /.cargo is the developer's cross-compilation config: Buildroot
# sets the toolchain itself, and the vendoring hook below writes its own.
PI_FAILOVER_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/target \
	--exclude=/buildroot-overlay \
	--exclude=/image \
	--exclude=/tests \
	--exclude=/bench \
	--exclude=/docs \
	--exclude=/examples \
	--exclude=/.ci \
	--exclude=/.cargo \
	--exclude=/output \
	--exclude='*.img'

# One artifact: the card carries the binary .ci/run measures against the
# 8 MiB budget and the booted-image test boots. Same target (static musl:
# the defconfigs use Bootlin's musl toolchain, Config.in depends on it),
# same profile (Cargo.toml's size-tuned [profile.pi], whose keys are all
# explicit so that the CARGO_PROFILE_RELEASE_* pkg-cargo.mk exports cannot
# reach it), same features (no demo). check.sh fails when these arguments
# and .ci/run's cross build differ.
PI_FAILOVER_CARGO_BUILD_OPTS = \
	--locked \
	--profile pi \
	--target aarch64-unknown-linux-musl \
	--no-default-features

# pkg-cargo.mk's build passes --release, which cargo refuses next to
# --profile: the same command otherwise.
define PI_FAILOVER_BUILD_CMDS
	cd $(PI_FAILOVER_SRCDIR) && \
	$(TARGET_MAKE_ENV) \
		$(TARGET_CONFIGURE_OPTS) \
		$(PKG_CARGO_ENV) \
		$(PI_FAILOVER_CARGO_ENV) \
		cargo build \
			--offline \
			--manifest-path Cargo.toml \
			$(PI_FAILOVER_CARGO_BUILD_OPTS)
endef

# Buildroot vendors a cargo package's crates when it downloads the package
# (support/download/cargo-post-process runs "cargo vendor" and repacks the
# tarball). A SITE_METHOD = local package is rsynced, not downloaded, so
# that never happens here: "cargo build --offline" would find no crates.
# Vendor before configuring instead (host-rustc is built by then):
#  - if the repository has a vendor/ directory ("cargo vendor --locked
#    vendor" run once on a machine with network, or shipped in a source
#    release), use it: the build fetches nothing;
#  - otherwise run the same "cargo vendor --locked" Buildroot runs at
#    download time, with Buildroot's cargo home as the crate cache: this
#    needs network (crates.io) once.
define PI_FAILOVER_VENDOR_CRATES
	mkdir -p $(@D)/.cargo $(BR_CARGO_HOME)
	if [ -d $(@D)/vendor ]; then \
		printf '%s\n' '[source.crates-io]' \
			'replace-with = "vendored-sources"' '' \
			'[source.vendored-sources]' 'directory = "vendor"' \
			> $(@D)/.cargo/config.toml; \
	else \
		cd $(@D) && $(HOST_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
			flock $(BR_CARGO_HOME)/.br-lock \
			cargo vendor --manifest-path Cargo.toml --locked VENDOR \
			> $(@D)/.cargo/config.toml; \
	fi
endef
PI_FAILOVER_PRE_CONFIGURE_HOOKS += PI_FAILOVER_VENDOR_CRATES

# Install the binary cargo build made, rather than letting "cargo install"
# compile it a second time (fat LTO is the slow part of the build).
# target/<target>/<profile>/, the path .ci/run measures.
define PI_FAILOVER_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/aarch64-unknown-linux-musl/pi/pi-failover \
		$(TARGET_DIR)/usr/bin/pi-failover
	$(INSTALL) -D -m 0755 $(PI_FAILOVER_PKGDIR)/pi-failover-run \
		$(TARGET_DIR)/usr/libexec/pi-failover/run
	$(INSTALL) -D -m 0755 $(PI_FAILOVER_PKGDIR)/pi-failover-watchdog \
		$(TARGET_DIR)/usr/libexec/pi-failover/watchdog
endef

define PI_FAILOVER_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(PI_FAILOVER_PKGDIR)/S99pi-failover \
		$(TARGET_DIR)/etc/init.d/S99pi-failover
endef

# Fixed ids: /etc/fstab mounts the FAT boot partition with gid=990 so that
# this group, and only it, can read the certificate key and credentials.
define PI_FAILOVER_USERS
	pifailover 990 pifailover 990 * - - - pi-failover appliance
endef

$(eval $(cargo-package))
