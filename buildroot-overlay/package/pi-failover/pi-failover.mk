################################################################################
#
# pi-failover
#
################################################################################

# The source is a release of the repository this BR2_EXTERNAL tree lives
# in: buildroot-overlay/release.sh makes dist/pi-failover-VERSION.tar.gz
# (the crate with every dependency vendored in VENDOR/) and the hash
# Buildroot checks it against (pi-failover.hash, generated next to this
# file). "make source" copies it into the download directory; nothing in
# the build needs the network, and "make legal-info" saves the tarball.
# check.sh keeps the version equal to Cargo.toml's.
#
# Developers build their working copy instead, with
#   PI_FAILOVER_OVERRIDE_SRCDIR = /path/to/pi-failover
# in the output directory's local.mk (docs/building-the-image.md): it is
# rsynced (the exclusions below) and vendored by the hook further down.
PI_FAILOVER_VERSION = 0.1.0
PI_FAILOVER_SITE = $(realpath $(BR2_EXTERNAL_PIFAILOVER_PATH)/..)/dist
PI_FAILOVER_SITE_METHOD = file
PI_FAILOVER_LICENSE = Apache-2.0 or MIT
PI_FAILOVER_LICENSE_FILES = LICENSE-APACHE LICENSE-MIT

# A working copy (PI_FAILOVER_OVERRIDE_SRCDIR) needs only Cargo.toml,
# Cargo.lock, build.rs, src/ and (when present) vendor/. /.cargo is the
# developer's cross-compilation config: Buildroot sets the toolchain itself,
# and the vendoring hook below writes its own.
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
	--exclude=/dist \
	--exclude=/fuzz \
	--exclude=/cross.toml \
	--exclude=/deny.toml \
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

# The flags the repository's .cargo/config.toml gives the cross build (that
# file is not copied here): no unwind tables in a binary that aborts on
# panic. check.sh compares the two.
PI_FAILOVER_CARGO_ENV = \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C force-unwind-tables=no"

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

# The release tarball carries VENDOR/ and the .cargo/config.toml that points
# cargo at it (Buildroot's cargo post-process leaves such a tarball as it
# is). A working copy rsynced from PI_FAILOVER_OVERRIDE_SRCDIR is never
# downloaded, so nothing vendors it: vendor before configuring (host-rustc is
# built by then):
#  - if the working copy has a vendor/ directory ("cargo vendor --locked
#    vendor" run once on a machine with network), use it;
#  - otherwise run the same "cargo vendor --locked" Buildroot runs at
#    download time, with Buildroot's cargo home as the crate cache: this
#    needs network (crates.io) once.
define PI_FAILOVER_VENDOR_CRATES
	mkdir -p $(@D)/.cargo $(BR_CARGO_HOME)
	if [ -d $(@D)/VENDOR ]; then \
		true; \
	elif [ -d $(@D)/vendor ]; then \
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
	$(INSTALL) -D -m 0644 $(PI_FAILOVER_PKGDIR)/pi-failover-lib \
		$(TARGET_DIR)/usr/libexec/pi-failover/lib.sh
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
