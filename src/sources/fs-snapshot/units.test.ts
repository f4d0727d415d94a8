import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { isBelow, mountsBelow, parseMountPoints } from "./mounts.js";
import { isKeptName, keptName, newFreezeName, ownerAlive, ownerOfName, thisOwner } from "./owner.js";
import { btrfsRollback } from "./rollback.js";

test("mount points: the kernel's escapes undone, only those below a folder", () => {
  const info = [
    "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw",
    "40 22 0:40 / /srv/data rw shared:2 - btrfs /dev/loop0 rw",
    "41 40 0:41 / /srv/data/my\\040disk rw shared:3 - ext4 /dev/sdb1 rw",
    "42 22 0:42 / /srv/database rw shared:4 - ext4 /dev/sdc1 rw",
  ].join("\n");
  const all = parseMountPoints(info);
  assert.deepEqual(all, ["/", "/srv/data", "/srv/data/my disk", "/srv/database"]);
  assert.deepEqual(mountsBelow("/srv/data", all), ["/srv/data/my disk"]);
  assert.deepEqual(mountsBelow("/", all), ["/srv/data", "/srv/data/my disk", "/srv/database"]);
  assert.ok(isBelow("/a/b", "/a") && !isBelow("/ab", "/a") && !isBelow("/a", "/a"));
});

test("names say who made a snapshot; only a gone owner's are swept, kept ones never", () => {
  const name = `${newFreezeName()}-0`;
  assert.match(name, /^lifeboat-fs-\d+-\d+-[0-9a-f]{8}-0$/);
  assert.deepEqual(ownerOfName(name), thisOwner());
  assert.equal(ownerAlive(ownerOfName(name)!), true);
  // A finished process: same form, not alive (and a live pid with another start time is not it).
  const pid = Number(execFileSync("sh", ["-c", "echo $$"], { encoding: "utf8" }));
  assert.equal(ownerAlive({ pid, start: "12345" }), false);
  assert.equal(ownerAlive({ pid: process.pid, start: `${thisOwner().start}0` }), false);
  for (const other of ["mine", "lifeboat-fs-1-2", "lifeboat-fs-x-2-0badcafe-0", ".snapshots"])
    assert.equal(ownerOfName(other), undefined, other);
  const kept = keptName(name, "0123456789abcdef");
  assert.match(kept, /^lifeboat-guard-01234567-[0-9a-f]{8}-0$/);
  assert.ok(isKeptName(kept) && ownerOfName(kept) === undefined);
});

test("the instant rollback puts a tree back from a copy of it (cp --reflink=auto here), leaving the snapshot folder alone", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-rollback-"));
  try {
    const live = path.join(dir, "live");
    const snap = path.join(dir, "live", ".lifeboat-snapshots", "s");
    await fs.mkdir(path.join(live, "a b"), { recursive: true });
    await fs.writeFile(path.join(live, "a b", "f"), "before\n");
    await fs.writeFile(path.join(live, ".hidden"), "h\n");
    await fs.mkdir(snap, { recursive: true });
    execFileSync("sh", ["-c", `cp -a "${live}/a b" "${live}/.hidden" "${snap}/"`]);
    // The command wrecks it.
    await fs.rm(path.join(live, "a b"), { recursive: true });
    await fs.writeFile(path.join(live, "junk"), "junk\n");
    await fs.chmod(live, 0o700);
    const r = btrfsRollback({
      sources: [live],
      kept: new Map([[live, snap]]),
      isDir: () => true,
      nested: [],
      subvolumeRoots: [live],
      mounts: [],
    });
    assert.ok(r.command);
    // Only reflinks are asked for; on a file system without them (this one), copy instead.
    execFileSync("sh", ["-c", r.command.replaceAll("--reflink=always", "--reflink=auto")]);
    assert.deepEqual((await fs.readdir(live)).sort(), [".hidden", ".lifeboat-snapshots", "a b"]);
    assert.equal(await fs.readFile(path.join(live, "a b", "f"), "utf8"), "before\n");
    assert.equal((await fs.stat(live)).mode & 0o777, (await fs.stat(snap)).mode & 0o777);
    assert.deepEqual(await fs.readdir(snap), [".hidden", "a b"].sort());

    const blocked = btrfsRollback({
      sources: [live],
      kept: new Map([[live, snap]]),
      isDir: () => true,
      nested: [],
      subvolumeRoots: [live],
      mounts: [path.join(live, "mnt")],
    });
    assert.equal(blocked.command, undefined);
    assert.match(blocked.reason!, /another file system is mounted below/);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
