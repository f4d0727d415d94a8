#!/bin/sh
# lifeboat --fs-snapshot-command and --fs-snapshot-cleanup for ZFS, through a read-only clone
# mounted under /run/lifeboat (works where the .zfs folder is not available, e.g. zfs-fuse).
#   lifeboat backup /tank/data --fs-snapshot-command /usr/local/sbin/lifeboat-zfs-clone \
#       --fs-snapshot-cleanup /usr/local/sbin/lifeboat-zfs-clone
# Run by lifeboat's tests on zfs-fuse 0.7.0 (Debian 12); see docs/fs-snapshots.md.
set -eu
src=$LIFEBOAT_FS_SNAPSHOT_SOURCE
name=$LIFEBOAT_FS_SNAPSHOT_NAME
ds=$(zfs list -H -o name "$src")              # the dataset that holds the path
mnt=$(zfs get -H -o value mountpoint "$ds")
clone="${ds%%/*}/$name"                       # in the pool's top: found again by its name
at="${LIFEBOAT_ZFS_CLONES:-/run/lifeboat}/$name"
case $LIFEBOAT_FS_SNAPSHOT_ACTION in
create)
  zfs snapshot "$ds@$name"
  zfs clone -o readonly=on -o mountpoint="$at" "$ds@$name" "$clone"
  rel=${src#"$mnt"}
  echo "$at/${rel#/}"
  ;;
cleanup)
  # Also after a crash, part-way: remove whatever is there, succeed when nothing is.
  # A file read through FUSE is released a moment after it is closed: try again for a while.
  i=0
  while zfs list -H -o name "$clone" >/dev/null 2>&1; do
    if zfs destroy -f "$clone" 2>/dev/null; then break; fi
    i=$((i + 1))
    if [ "$i" -ge 20 ]; then zfs destroy -f "$clone"; fi   # its error, and exit
    sleep 0.5
  done
  if zfs list -H -o name -t snapshot "$ds@$name" >/dev/null 2>&1; then zfs destroy "$ds@$name"; fi
  rmdir "$at" 2>/dev/null || true
  ;;
esac
