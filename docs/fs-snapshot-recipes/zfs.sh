#!/bin/sh
# lifeboat --fs-snapshot-command and --fs-snapshot-cleanup for ZFS (OpenZFS), read through the
# dataset's .zfs/snapshot folder: no clone, no mount.
#   lifeboat backup /tank/data --fs-snapshot-command /usr/local/sbin/lifeboat-zfs \
#       --fs-snapshot-cleanup /usr/local/sbin/lifeboat-zfs
# Not run by lifeboat's tests (zfs-fuse has no .zfs folder; see docs/fs-snapshots.md).
set -eu
src=$LIFEBOAT_FS_SNAPSHOT_SOURCE
name=$LIFEBOAT_FS_SNAPSHOT_NAME
ds=$(zfs list -H -o name "$src")              # the dataset that holds the path
mnt=$(zfs get -H -o value mountpoint "$ds")
case $LIFEBOAT_FS_SNAPSHOT_ACTION in
create)
  zfs snapshot "$ds@$name"
  rel=${src#"$mnt"}
  echo "$mnt/.zfs/snapshot/$name/${rel#/}"    # mounted on first access
  ;;
cleanup)
  if zfs list -H -o name -t snapshot "$ds@$name" >/dev/null 2>&1; then zfs destroy "$ds@$name"; fi
  ;;
esac
