/**
 * A write-only key on S3 with Object Lock (moto's S3 server): the host reads the retention from
 * config.wo and locks everything it writes as a full key would (and a retention the owner changes
 * later too); a locked version of what it wrote cannot be deleted with the storage credentials,
 * and the key itself refuses to delete at all.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { ExitCode } from "../../src/core/errors.js";
import {
  assertCleanError,
  baseEnv,
  removeTempDir,
  run,
  runOk,
  show,
  summaryOf,
  tempDir,
  writeRandomFile,
} from "../support/cli.js";
import { hasMoto, type MotoServer, startMoto } from "../support/moto.js";

const BUCKET = "lifeboat-wo-locked";
const DAY = 86_400_000;

let moto: MotoServer;
let dir: string;
const skip = !(await hasMoto()) && "moto_server is not installed (pip install 'moto[server]')";

before(async () => {
  if (skip) return;
  moto = await startMoto();
  await moto.createBucket(BUCKET, true);
  dir = await tempDir("lifeboat-wo-lock-");
});
after(async () => {
  if (skip) return;
  await moto?.stop();
  if (dir) await removeTempDir(dir);
});

const env = (password: string, extra: Record<string, string> = {}) =>
  baseEnv({
    ...moto.env(),
    LIFEBOAT_REPOSITORY: moto.url(BUCKET, "wo"),
    LIFEBOAT_PASSWORD: password,
    LIFEBOAT_CACHE_DIR: path.join(dir, "cache"),
    ...extra,
  });

describe("a write-only key on storage with Object Lock", { skip }, () => {
  test("the host locks what it writes with the repository's retention, also after the owner changes it; nothing it wrote can be deleted", async () => {
    await runOk(["init", "--retention-days", "1", "--retention-mode", "governance"], { env: env("owner") });
    await runOk(["key", "add", "--write-only"], { env: env("owner", { LIFEBOAT_NEW_PASSWORD: "host" }) });
    const src = path.join(dir, "src");
    await fs.mkdir(src, { recursive: true });
    await writeRandomFile(path.join(src, "a.bin"), 2, 41);
    const known = new Set((await moto.versions(BUCKET, "wo/")).map((v) => `${v.key} ${v.versionId}`));
    const started = Date.now();
    const b = await run(["backup", src, "--json"], { env: env("host") });
    assert.equal(b.code, 0, show(b));
    const mine = (await moto.versions(BUCKET, "wo/")).filter((v) => !known.has(`${v.key} ${v.versionId}`));
    const kinds = new Set(mine.map((v) => v.key.split("/")[1]!));
    for (const k of ["data", "index", "snapshots"]) assert.ok(kinds.has(k), `${k} written by the host`);
    assert.ok(!kinds.has("sessions"), "its session is gone");
    for (const v of mine) {
      const lock = await moto.lockOf(BUCKET, v.key);
      assert.ok(lock, `${v.key} is locked`);
      assert.equal(lock.mode, "GOVERNANCE");
      const ahead = lock.until.getTime() - started;
      assert.ok(ahead > DAY - 120_000 && ahead < DAY + 120_000, `${v.key} until ${lock.until.toISOString()}`);
    }
    // The storage credentials cannot remove a locked version; the key does not even try.
    const pack = mine.find((v) => v.key.includes("/data/"))!;
    await assert.rejects(
      moto.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: pack.key, VersionId: pack.versionId })),
    );
    assertCleanError(
      await run(["forget", summaryOf(b).snapshot_id as string], { env: env("host") }),
      ExitCode.needsFullKey,
    );

    // The owner lengthens the retention: the host's next backup reads it from config.wo.
    await runOk(["retention", "set", "--days", "2", "--mode", "governance"], { env: env("owner") });
    await writeRandomFile(path.join(src, "b.bin"), 1, 42);
    const earlier = new Set((await moto.versions(BUCKET, "wo/snapshots/")).map((v) => v.key));
    await runOk(["backup", src], { env: env("host") });
    const fresh = (await moto.versions(BUCKET, "wo/snapshots/")).filter((v) => !earlier.has(v.key));
    assert.equal(fresh.length, 1, "one new snapshot");
    const lock = await moto.lockOf(BUCKET, fresh[0]!.key);
    assert.ok(
      lock && lock.until.getTime() - Date.now() > 1.9 * DAY,
      "the host's new snapshot is locked for 2 days",
    );
    await runOk(["check", "--read-data"], { env: env("owner") });
  });
});
