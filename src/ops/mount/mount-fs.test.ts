import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryBackend } from "../../backend/memory.js";
import { nameFromBytes } from "../../core/names.js";
import { BlobType } from "../../repo/blob.js";
import { Repository } from "../../repo/repository.js";
import { SnapshotFs } from "./mount-fs.js";

test("a mount shows names that are not UTF-8 as \\xHH, finds them by that name, and serves attributes", async () => {
  const repo = await Repository.init(memoryBackend(), "pw", {
    chunker: { min: 1024, avg: 4096, max: 16384 },
    packSize: 64 * 1024,
  });
  try {
    const m = { mode: 0o644, uid: 0, gid: 0, mtime: "1700000000000000000" };
    const latin = nameFromBytes(Buffer.from("caf\xe9.txt", "latin1"));
    const tree = await repo.withWriter(async (w) => {
      const blob = (await w.saveBlob(BlobType.data, Buffer.from("bytes\n"))).id.toString("hex");
      return (
        await w.saveTree({
          nodes: [
            {
              name: latin,
              type: "file",
              ...m,
              size: 6,
              content: [blob],
              xattrs: [{ name: "user.comment", value: Buffer.from("hi").toString("base64") }],
            },
            { name: "fifo", type: "fifo", ...m },
            { name: "null", type: "chardev", ...m, rdev: "259" },
            { name: "l", type: "symlink", ...m, mode: 0o777, target: latin },
          ],
        })
      ).id;
    });
    const id = await repo.writeSnapshot({
      version: 1,
      time: "2026-01-01T00:00:00.000Z",
      tree,
      paths: ["/x"],
      hostname: "h",
      username: "u",
      tags: [],
      incomplete: false,
      errors: [],
      changedWhileReading: [],
      excludes: [],
      program: "test",
    });
    const sfs = new SnapshotFs(repo, { snapshot: await repo.loadSnapshot(id) });
    assert.deepEqual((await sfs.readdir("/")).sort(), ["caf\\xE9.txt", "fifo", "l", "null"]);
    assert.equal((await sfs.getattr("/caf\\xE9.txt")).size, 6);
    const fd = await sfs.openFile("/caf\\xE9.txt");
    const buf = Buffer.alloc(6);
    assert.equal(await sfs.read(fd, buf, 6, 0), 6);
    assert.equal(buf.toString(), "bytes\n");
    assert.equal(await sfs.readlink("/l"), "caf\\xE9.txt");
    assert.deepEqual(await sfs.listxattr("/caf\\xE9.txt"), ["user.comment"]);
    assert.equal((await sfs.getxattr("/caf\\xE9.txt", "user.comment"))?.toString(), "hi");
    assert.equal(await sfs.getxattr("/caf\\xE9.txt", "user.other"), undefined);
    assert.equal((await sfs.getattr("/fifo")).mode & 0o170000, 0o010000);
    const dev = await sfs.getattr("/null");
    assert.equal(dev.mode & 0o170000, 0o020000);
    assert.equal(dev.rdev, 259);
  } finally {
    await repo.close();
  }
});
