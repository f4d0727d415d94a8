#!/bin/sh
# The protocol of --fs-snapshot-command and --fs-snapshot-cleanup shown with btrfs (lifeboat's
# own --fs-snapshot btrfs does this, plus nested subvolumes, built in): a read-only snapshot of
# the subvolume that holds the path, in that subvolume's .lifeboat-hook-snapshots folder.
# Run by lifeboat's tests on a btrfs loop device; see docs/fs-snapshots.md.
set -eu
src=$LIFEBOAT_FS_SNAPSHOT_SOURCE
name=$LIFEBOAT_FS_SNAPSHOT_NAME
# The subvolume's root: the highest folder above the path on the same device.
root=$src
dev=$(stat -c %d "$src")
while [ "$root" != / ] && [ "$(stat -c %d "$(dirname "$root")")" = "$dev" ]; do
  root=$(dirname "$root")
done
dir=$root/.lifeboat-hook-snapshots
case $LIFEBOAT_FS_SNAPSHOT_ACTION in
create)
  mkdir -p "$dir"
  btrfs -q subvolume snapshot -r "$root" "$dir/$name"
  rel=${src#"$root"}
  echo "$dir/$name/${rel#/}"
  ;;
cleanup)
  if [ -d "$dir/$name" ]; then btrfs -q subvolume delete "$dir/$name"; fi
  ;;
esac
