#!/usr/bin/env bash
# Builds the tiny local image `gridchain/busybox:latest` from Debian's busybox-static, with no
# registry: a rootfs with the static busybox and its applets, imported with `docker import`.
# Usage: zos-agent/images/build-busybox-image.sh [tag]
# BLOB_MB=N adds /blob of N MiB of random bytes (an image of realistic size for pull benchmarks).
set -euo pipefail
tag="${1:-gridchain/busybox:latest}"
busybox=/bin/busybox
if [ ! -x "$busybox" ]; then
  echo "busybox-static is not installed: apt-get install -y busybox-static" >&2
  exit 1
fi
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,root,data}
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
echo "root:x:0:" > "$rootfs/etc/group"
if [ -n "${BLOB_MB:-}" ]; then
  head -c "$((BLOB_MB * 1024 * 1024))" /dev/urandom > "$rootfs/blob"
fi
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/bin:/sbin' \
  --change 'CMD ["/bin/sh"]' \
  - "$tag" >/dev/null
echo "$tag"
