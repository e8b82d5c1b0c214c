#!/usr/bin/env bash
# Buildroot post-image script: the SD card image with the same genimage
# layout as scripts/build-image (board/BOARD/genimage.cfg), from
# Buildroot's kernel, device trees, Raspberry Pi firmware and initramfs.
# Arguments: BINARIES_DIR BOARD (BR2_ROOTFS_POST_SCRIPT_ARGS gives the board).
# Writes BINARIES_DIR/pochta-BOARD.img.
set -euo pipefail
BINARIES_DIR=$1
BOARD=$2
BOARD_DIR=$(cd "$(dirname "$0")/../../$BOARD" && pwd)
IN=$BINARIES_DIR/pochta-input
WORK=$BINARIES_DIR/pochta-genimage

rm -rf "$IN" "$WORK"
mkdir -p "$IN" "$WORK/root" "$WORK/tmp"
cp "$BINARIES_DIR/Image" "$IN/vmlinuz"
cp "$BINARIES_DIR/rootfs.cpio.gz" "$IN/initrd.img"
for f in cmdline-a.txt cmdline-b.txt autoboot.txt; do
  cp "$BOARD_DIR/$f" "$IN/$f"
done
# The Raspberry Pi kernel comes with its own device trees, not the
# upstream ones that Debian's kernel uses.
sed '/^upstream_kernel=/d' "$BOARD_DIR/config.txt" > "$IN/config.txt"
case "$BOARD" in
  rpi4-64)
    cp "$BINARIES_DIR"/rpi-firmware/{start4.elf,fixup4.dat} "$IN/"
    cp "$BINARIES_DIR"/bcm2711-rpi-{4-b,400,cm4-io}.dtb "$IN/"
    ;;
  rpi5)
    cp "$BINARIES_DIR/bcm2712-rpi-5-b.dtb" "$IN/"
    ;;
  *)
    echo "post-image.sh: unknown board $BOARD" >&2
    exit 1
    ;;
esac
genimage --config "$BOARD_DIR/genimage.cfg" --inputpath "$IN" --outputpath "$WORK" \
  --rootpath "$WORK/root" --tmppath "$WORK/tmp"
mv "$WORK/pochta.img" "$BINARIES_DIR/pochta-$BOARD.img"
echo "post-image.sh: $BINARIES_DIR/pochta-$BOARD.img"
