/**
 * Object Lock retention: every put carries the retention headers S3 expects (checked at the
 * HTTP boundary with a tiny S3 endpoint, since s3rver ignores Object Lock), backends without
 * retention refuse the option, and prune keeps objects whose deletion storage refuses.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { backup } from "../../src/app/backup.js";
import type { Backend } from "../../src/backend/backend.js";
import { localBackend } from "../../src/backend/local.js";
import { lockedBackend, withRetention } from "../../src/backend/retention.js";
import { s3Backend } from "../../src/backend/s3.js";
import { LifeboatError, RetainedError } from "../../src/core/errors.js";
import { check } from "../../src/ops/check/check.js";
import { forget } from "../../src/ops/forget/forget.js";
import { prune } from "../../src/ops/prune/prune.js";
import { Repository } from "../../src/repo/repository.js";

process.env.LIFEBOAT_KDF_N = "1024";

test("puts carry x-amz-object-lock-mode and -retain-until-date", async () => {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      seen.push(req.headers);
      res.writeHead(200, { etag: '"0"' });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const port = (server.address() as AddressInfo).port;
    const s3 = s3Backend({
      url: `s3:http://127.0.0.1:${port}/bucket/repo`,
      endpoint: `http://127.0.0.1:${port}`,
      host: "127.0.0.1",
      bucket: "bucket",
      prefix: "repo",
      region: "us-east-1",
      credentials: { accessKeyId: "k", secretAccessKey: "s" },
      maxAttempts: 1,
    });
    const locked = withRetention(s3, { days: 30, mode: "compliance" });
    const before = Date.now();
    await locked.put("snapshots/abc", Buffer.from("x"));
    const h = seen.at(-1)!;
    assert.equal(h["x-amz-object-lock-mode"], "COMPLIANCE");
    const until = Date.parse(String(h["x-amz-object-lock-retain-until-date"]));
    assert.ok(
      Math.abs(until - (before + 30 * 86_400_000)) < 60_000,
      `retain until ${h["x-amz-object-lock-retain-until-date"]}`,
    );
    assert.ok(h["content-md5"], "S3 requires an integrity header with Object Lock");
    await withRetention(s3, { days: 1, mode: "governance" }).put("data/ab/cd", Buffer.from("y"));
    assert.equal(seen.at(-1)!["x-amz-object-lock-mode"], "GOVERNANCE");
    await s3.close();
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test("a backend without retention refuses the option with a clear error", () => {
  assert.throws(
    () => withRetention(localBackend({ path: "/tmp/x" }), { days: 1, mode: "governance" }),
    (e: unknown) => e instanceof LifeboatError && e.code === "USAGE" && /Object Lock/.test(e.message),
  );
});

test("a locking wrapper never lets a pack be streamed unlocked past it", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-retention-"));
  try {
    let retention: { days: number; mode: "governance" } | undefined = { days: 1, mode: "governance" };
    const be = lockedBackend(localBackend({ path: dir, fsync: false }), () => retention);
    await assert.rejects(be.openWriter!("data"), /Object Lock|cannot keep|retention/i);
    assert.deepEqual(await fs.readdir(dir), [], "nothing was started");
    retention = undefined; // the repository keeps no retention: packs stream as usual
    const w = await be.openWriter!("data");
    await w.write(Buffer.from("pack"));
    await w.commit("data/ab/cd");
    assert.equal((await be.get("data/ab/cd")).toString(), "pack");
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("prune keeps objects storage refuses to delete (under retention) and removes them later", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-retention-"));
  try {
    let locked = true;
    const inner = localBackend({ path: path.join(dir, "repo"), fsync: false });
    const backend: Backend = {
      ...inner,
      async delete(name: string) {
        if (locked && (name.startsWith("data/") || name.startsWith("index/")))
          throw new RetainedError(
            name,
            `${name}: AccessDenied (object is under retention)`,
            undefined,
            "governance",
          );
        return inner.delete(name);
      },
    };
    const repo = await Repository.init(backend, "pw");
    const src = path.join(dir, "src");
    await fs.mkdir(src);
    for (let i = 0; i < 3; i++) {
      await fs.writeFile(
        path.join(src, "f.bin"),
        Buffer.alloc(300_000, i + 1).map((b, k) => (b * k) % 251),
      );
      await backup(repo, [src], {});
    }
    await forget(repo, { policy: { last: 1 } });
    const first = await prune(repo, { maxUnusedPercent: 0 });
    assert.ok(first.swept.length > 0);
    assert.ok(first.swept[0]!.retained > 0, "deletions were refused and counted");
    assert.equal(first.swept[0]!.deletedPacks, 0);
    const c = await check(repo);
    assert.deepEqual(c.problems, [], "the repository stays consistent");
    locked = false;
    const second = await prune(repo, { maxUnusedPercent: 0 });
    assert.ok(
      second.swept.some((s) => s.deletedPacks > 0),
      "once retention ends, a later prune deletes them",
    );
    assert.deepEqual((await check(repo, { readData: true })).problems, []);
    await repo.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
