#!/bin/sh
# lifeboat --fs-snapshot-command and --fs-snapshot-cleanup for LVM: a snapshot volume of the
# logical volume that holds the path (creating it freezes the file system for a moment, so the
# snapshot is consistent), mounted read-only under /run/lifeboat.
#   lifeboat backup /srv --fs-snapshot-command /usr/local/sbin/lifeboat-lvm \
#       --fs-snapshot-cleanup /usr/local/sbin/lifeboat-lvm
# LIFEBOAT_LVM_SIZE: room for changes made while the backup runs (default 2G; a snapshot that
# fills up becomes invalid and the backup fails to read). Thin volumes need no size.
# Not run by lifeboat's tests (no device-mapper there; see docs/fs-snapshots.md).
set -eu
src=$LIFEBOAT_FS_SNAPSHOT_SOURCE
name=$LIFEBOAT_FS_SNAPSHOT_NAME
mnt=$(findmnt -n -o TARGET --target "$src")
dev=$(findmnt -n -o SOURCE --target "$src")   # /dev/mapper/VG-LV
fstype=$(findmnt -n -o FSTYPE --target "$src")
vg=$(lvs --noheadings -o vg_name "$dev" | tr -d ' ')
at=/run/lifeboat/$name
case $LIFEBOAT_FS_SNAPSHOT_ACTION in
create)
  lv=$(lvs --noheadings -o lv_name "$dev" | tr -d ' ')
  if [ "$(lvs --noheadings -o pool_lv "$dev" | tr -d ' ')" ]; then
    lvcreate -q -s -n "$name" -kn "$vg/$lv" >/dev/null          # thin: no size, activate
  else
    lvcreate -q -s -n "$name" -L "${LIFEBOAT_LVM_SIZE:-2G}" "$vg/$lv" >/dev/null
  fi
  mkdir -p "$at"
  opts=ro
  [ "$fstype" = xfs ] && opts=ro,nouuid,norecovery              # same UUID as the origin
  mount -t "$fstype" -o "$opts" "/dev/$vg/$name" "$at"
  rel=${src#"$mnt"}
  echo "$at/${rel#/}"
  ;;
cleanup)
  if mountpoint -q "$at"; then umount "$at"; fi
  rmdir "$at" 2>/dev/null || true
  if lvs "$vg/$name" >/dev/null 2>&1; then lvremove -q -y "$vg/$name" >/dev/null; fi
  ;;
esac
