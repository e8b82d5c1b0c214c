#!/usr/bin/env bash
# Buildroot post-build script: what scripts/build-image adds to rootfs/
# besides BusyBox, pochta and the modules (which Buildroot installs).
# Arguments: TARGET_DIR BOARD (BR2_ROOTFS_POST_SCRIPT_ARGS gives the board).
set -euo pipefail
TARGET_DIR=$1
REPO=$(cd "$(dirname "$0")/../../.." && pwd)

mkdir -p "$TARGET_DIR"/{data,boot,run,etc/pochta}
# The overlay's README is for the repository, not the image.
rm -f "$TARGET_DIR/README.md"
git -C "$REPO" describe --always --dirty 2>/dev/null > "$TARGET_DIR/etc/pochta/version" \
  || echo unknown > "$TARGET_DIR/etc/pochta/version"
git -C "$REPO" log -1 --format=%ct 2>/dev/null > "$TARGET_DIR/etc/pochta/build-epoch" \
  || date +%s > "$TARGET_DIR/etc/pochta/build-epoch"
# The kernel has the board's drivers built in (board/BOARD/linux.fragment):
# no module list to load.
rm -f "$TARGET_DIR/lib/modules/load.list"
# Buildroot's own start scripts are not used: rootfs/etc/init.d/rcS is.
find "$TARGET_DIR/etc/init.d" -name 'S[0-9]*' -delete
