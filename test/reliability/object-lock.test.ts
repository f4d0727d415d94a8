/**
 * S3 Object Lock on a versioned bucket, against moto's S3 server (versioning and Object Lock as
 * S3 has them): the repository remembers its retention and every writer applies it; prune
 * deletes versions (never leaving delete markers), keeps what storage refuses in its plan with
 * the dates, and deletes it once the retention is lifted; sessions and plans are never locked;
 * `repair undelete` brings back what someone else's plain deletes hid.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { DeleteObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import {
  assertCleanError,
  assertTreesEqual,
  baseEnv,
  jsonLines,
  removeTempDir,
  run,
  runOk,
  show,
  tempDir,
  writeRandomFile,
} from "../support/cli.js";
import { hasMoto, type MotoServer, startMoto } from "../support/moto.js";

const BUCKET = "lifeboat-locked";
const DAY = 86_400_000;

let moto: MotoServer;
let dir: string;
const skip = !(await hasMoto()) && "moto_server is not installed (pip install 'moto[server]')";

before(async () => {
  if (skip) return;
  moto = await startMoto();
  await moto.createBucket(BUCKET, true);
  await moto.createBucket("lifeboat-plain", false);
  dir = await tempDir("lifeboat-lock-");
});
after(async () => {
  if (skip) return;
  await moto?.stop();
  if (dir) await removeTempDir(dir);
});

const envFor = (prefix: string, extra: Record<string, string> = {}) =>
  baseEnv({
    ...moto.env(),
    LIFEBOAT_REPOSITORY: moto.url(BUCKET, prefix),
    LIFEBOAT_PASSWORD: "pw",
    ...extra,
  });

const summary = (r: { stdout: string }, action: string) =>
  jsonLines(r.stdout).find((l) => l.message_type === "summary" && l.action === action) as Record<
    string,
    unknown
  >;

/** Moves the retention of every current version under `prefix` (matching `keep`) to `until`. */
async function lift(prefix: string, until: Date, keep: (key: string) => boolean = () => true) {
  for (const v of await moto.versions(BUCKET, prefix))
    if (!v.deleteMarker && keep(v.key)) await moto.liftRetention(BUCKET, v.key, v.versionId, until);
}

const soon = () => new Date(Date.now() + 1500);
const waitPast = (d: Date) => new Promise((r) => setTimeout(r, Math.max(0, d.getTime() - Date.now()) + 300));

describe("object lock on a versioned bucket", { skip }, () => {
  test("init remembers the retention; a backup without the option locks all but sessions and plans", async () => {
    const env = envFor("remember");
    await runOk(["init", "--retention-days", "1", "--retention-mode", "governance"], { env });
    const show1 = await runOk(["retention", "show", "--json"], { env });
    const doc = jsonLines(show1.stdout)[0] as {
      retention: unknown;
      bucket: { versioning: boolean; objectLock: boolean };
      lifecycle: { Rules: { NoncurrentVersionExpiration: { NoncurrentDays: number } }[] };
    };
    assert.deepEqual(doc.retention, { days: 1, mode: "governance" });
    assert.deepEqual(doc.bucket, { versioning: true, objectLock: true });
    assert.equal(doc.lifecycle.Rules[0]!.NoncurrentVersionExpiration.NoncurrentDays, 1);
    const config = JSON.parse((await runOk(["cat", "config"], { env })).stdout) as {
      version: number;
      features: { write: string[] };
    };
    assert.equal(config.version, 2);
    assert.ok(config.features.write.includes("retention"), "a lifeboat that does not know it may not write");

    const src = path.join(dir, "remember-src");
    await fs.mkdir(src, { recursive: true });
    await writeRandomFile(path.join(src, "a.bin"), 2, 31);
    const started = Date.now();
    await runOk(["backup", src], { env }); // no --retention-days
    const versions = await moto.versions(BUCKET, "remember/");
    assert.ok(
      versions.every((v) => !v.deleteMarker),
      "no delete marker",
    );
    assert.ok(
      !versions.some((v) => v.key.includes("/sessions/")),
      "the session is gone, every version of it",
    );
    const kinds = new Set<string>();
    for (const v of versions) {
      const lock = await moto.lockOf(BUCKET, v.key);
      assert.ok(lock, `${v.key} is locked`);
      assert.equal(lock.mode, "GOVERNANCE");
      const ahead = lock.until.getTime() - started;
      assert.ok(
        ahead > DAY - 120_000 && ahead < DAY + 120_000,
        `${v.key} locked until ${lock.until.toISOString()}`,
      );
      kinds.add(v.key.split("/")[1]!);
    }
    for (const k of ["config", "keys", "data", "index", "snapshots"]) assert.ok(kinds.has(k), `${k} written`);

    // Another retention on the command line is refused with the command that changes it.
    const other = await run(["backup", src, "--retention-days", "2"], { env });
    assertCleanError(other, 2, /differs from the retention this repository keeps \(1 days, governance\)/);
    assert.match(other.stderr, /lifeboat retention set --days 2/);
    // Changing it is explicit; later writes use the new one.
    await runOk(["retention", "set", "--days", "2", "--mode", "governance"], { env });
    await writeRandomFile(path.join(src, "b.bin"), 1, 32);
    await runOk(["backup", src], { env });
    const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout) as { id: string }[];
    const lock = await moto.lockOf(BUCKET, `remember/snapshots/${snaps.at(-1)!.id}`);
    assert.ok(lock && lock.until.getTime() - Date.now() > 1.9 * DAY, "the new snapshot is locked for 2 days");
    const bad = await run(["retention", "set", "--days", "soon"], { env });
    assertCleanError(bad, 2, /--days "soon" is not a whole number of days/);
  });

  test("a repository that did not remember its retention records it from the option once", async () => {
    const env = envFor("adopt");
    await runOk(["init"], { env });
    const src = path.join(dir, "adopt-src");
    await fs.mkdir(src, { recursive: true });
    await writeRandomFile(path.join(src, "a.bin"), 1, 33);
    const r = await runOk(["backup", src, "--retention-days", "1"], { env });
    assert.match(r.stdout, /recorded the retention in the repository \(1 days, governance\)/);
    await fs.writeFile(path.join(src, "later.txt"), "later\n");
    await runOk(["backup", src], { env });
    const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout) as { id: string }[];
    assert.ok(await moto.lockOf(BUCKET, `adopt/snapshots/${snaps.at(-1)!.id}`), "locked without the option");
  });

  test("retention on a bucket without Object Lock, or on a local folder, is refused in one line", async () => {
    const plain = baseEnv({
      ...moto.env(),
      LIFEBOAT_REPOSITORY: moto.url("lifeboat-plain", "r"),
      LIFEBOAT_PASSWORD: "pw",
    });
    assertCleanError(await run(["init", "--retention-days", "1"], { env: plain }), 2, /has no Object Lock/);
    const local = baseEnv({ LIFEBOAT_REPOSITORY: path.join(dir, "local-repo"), LIFEBOAT_PASSWORD: "pw" });
    assertCleanError(
      await run(["init", "--retention-days", "1"], { env: local }),
      2,
      /cannot keep objects under retention/,
    );
  });

  test("prune deletes versions, keeps locked packs in its plan with their dates, deletes them once lifted", async () => {
    const env = envFor("prune");
    await runOk(["init", "--retention-days", "1"], { env });
    const src = path.join(dir, "prune-src");
    await fs.mkdir(src, { recursive: true });
    for (let i = 0; i < 3; i++) {
      await writeRandomFile(path.join(src, "f.bin"), 2, 40 + i);
      await runOk(["backup", src], { env });
    }
    // The two older snapshots' own lock is lifted (governance: an administrator may), so
    // forget can remove them; their packs stay locked.
    const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout) as { id: string }[];
    const old = snaps.slice(0, 2).map((s) => `prune/snapshots/${s.id}`);
    let until = soon();
    await lift("prune/snapshots/", until, (k) => old.includes(k));
    await waitPast(until);
    const indexBefore = (await moto.versions(BUCKET, "prune/index/")).length;

    const r = await runOk(["forget", "--keep-last", "1", "--prune", "--max-unused", "0", "--json"], { env });
    assert.deepEqual((summary(r, "forget").removed as string[]).length, 2);
    const p = summary(r, "prune") as {
      swept: {
        deletedPacks: number;
        bytesFreed: number;
        retainedObjects: { object: string; until: string; bytes: number }[];
        replacedBy?: string;
      }[];
    };
    assert.equal(p.swept.length, 1, show(r));
    const s = p.swept[0]!;
    assert.equal(s.deletedPacks, 0, "every planned pack is locked");
    assert.equal(s.bytesFreed, 0, "nothing is reported freed that is not");
    const lockedPacks = s.retainedObjects.filter((o) => o.object.startsWith("data/"));
    assert.ok(lockedPacks.length >= 2, JSON.stringify(s.retainedObjects));
    for (const o of s.retainedObjects) {
      const ahead = Date.parse(o.until) - Date.now();
      assert.ok(ahead > DAY - 600_000 && ahead <= DAY, `${o.object} locked until ${o.until}`);
    }
    assert.ok(s.replacedBy, "the plan stays for the locked packs");
    let versions = await moto.versions(BUCKET, "prune/");
    assert.deepEqual(
      versions.filter((v) => v.deleteMarker).map((v) => v.key),
      [],
      "prune and forget leave no delete marker",
    );
    for (const k of old) assert.ok(!versions.some((v) => v.key === k), `${k}: every version deleted`);
    for (const o of lockedPacks)
      assert.ok(
        versions.some((v) => v.key === `prune/${o.object}`),
        "locked pack kept",
      );
    // The plan itself is not locked.
    const plans = versions.filter((v) => v.key.startsWith("prune/gc/"));
    assert.equal(plans.length, 1);
    assert.equal(await moto.lockOf(BUCKET, plans[0]!.key), undefined, "plans are never locked");

    // A prune before the date tries again (governance can be lifted at any time), is refused
    // again, and writes no index file (every one written would be locked for a day too).
    const indexMid = (await moto.versions(BUCKET, "prune/index/")).length;
    assert.ok(indexMid > indexBefore);
    const again = await runOk(["prune", "--json"], { env });
    const s2 = (summary(again, "prune") as typeof p).swept;
    assert.equal(s2.length, 1, show(again));
    assert.equal(s2[0]!.deletedPacks, 0);
    assert.deepEqual(
      s2[0]!.retainedObjects
        .filter((o) => o.object.startsWith("data/"))
        .map((o) => o.object)
        .sort(),
      lockedPacks.map((o) => o.object).sort(),
    );
    assert.equal((await moto.versions(BUCKET, "prune/index/")).length, indexMid);
    assert.deepEqual(
      (await moto.versions(BUCKET, "prune/")).filter((v) => v.deleteMarker),
      [],
    );
    assert.equal((await run(["check"], { env })).code, 0);

    // Once the retention has passed (lifted here), the next prune deletes them for good.
    until = soon();
    for (const o of s.retainedObjects) {
      const v = (await moto.versions(BUCKET, `prune/${o.object}`)).filter((x) => !x.deleteMarker);
      for (const x of v) await moto.liftRetention(BUCKET, x.key, x.versionId, until);
    }
    await waitPast(until);
    const last = await runOk(["prune", "--json"], { env });
    const done = summary(last, "prune") as { swept: { deletedPacks: number; bytesFreed: number }[] };
    assert.equal(done.swept[0]!.deletedPacks, lockedPacks.length, show(last));
    assert.equal(
      done.swept[0]!.bytesFreed,
      lockedPacks.reduce((n, o) => n + o.bytes, 0),
    );
    versions = await moto.versions(BUCKET, "prune/");
    for (const o of s.retainedObjects)
      assert.ok(!versions.some((v) => v.key === `prune/${o.object}`), `${o.object}: gone with every version`);
    assert.deepEqual(
      versions.filter((v) => v.deleteMarker || v.key.startsWith("prune/gc/")),
      [],
    );
    assert.equal((await run(["check", "--read-data"], { env })).code, 0);
    const target = path.join(dir, "prune-restore");
    await runOk(["restore", "latest", "--target", target], { env });
    await assertTreesEqual(src, path.join(target, src));
  });

  test("repair undelete brings back what plain deletes hid, and lists it first", async () => {
    const env = envFor("undelete");
    await runOk(["init", "--retention-days", "1"], { env });
    const src = path.join(dir, "undelete-src");
    await fs.mkdir(src, { recursive: true });
    await writeRandomFile(path.join(src, "a.bin"), 2, 50);
    await runOk(["backup", src], { env });
    // Someone with the bucket's credentials deletes everything the plain way.
    const before = (await moto.versions(BUCKET, "undelete/")).filter((v) => !v.deleteMarker);
    for (const v of before) await moto.plainDelete(BUCKET, v.key);
    // One marker with nothing behind it (its version was removed, by a lifecycle rule say).
    const stray = "undelete/snapshots/stray";
    const put = await moto.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: stray, Body: "x" }));
    await moto.plainDelete(BUCKET, stray);
    await moto.client.send(
      new DeleteObjectCommand({ Bucket: BUCKET, Key: stray, VersionId: put.VersionId! }),
    );
    assert.equal((await run(["snapshots"], { env })).code, 10, "the repository looks gone");

    const dry = await runOk(["repair", "undelete", "--dry-run", "--json"], { env });
    const d = summary(dry, "repair-undelete") as { hidden: { name: string }[]; emptyMarkers: unknown[] };
    assert.deepEqual(
      d.hidden.map((h) => h.name).sort(),
      before.map((v) => v.key.slice("undelete/".length)).sort(),
    );
    assert.equal(d.emptyMarkers.length, 1);
    assert.equal((await run(["snapshots"], { env })).code, 10, "a dry run changes nothing");
    const future = await runOk(["repair", "undelete", "--since", "2100-01-01T00:00:00Z", "--json"], { env });
    assert.deepEqual((summary(future, "repair-undelete") as { hidden: unknown[] }).hidden, []);

    const real = await runOk(["repair", "undelete"], { env });
    assert.match(real.stdout, /brought back \d+ object\(s\)/);
    const after = await moto.versions(BUCKET, "undelete/");
    assert.deepEqual(
      after.filter((v) => v.deleteMarker),
      [],
      "no marker left",
    );
    assert.equal((await run(["check", "--read-data"], { env })).code, 0);
    const target = path.join(dir, "undelete-restore");
    await runOk(["restore", "latest", "--target", target], { env });
    await assertTreesEqual(src, path.join(target, src));

    assertCleanError(await run(["repair", "undelete", "--since", "yesterday"], { env }), 2, /is not a time/);
    const local = baseEnv({ LIFEBOAT_REPOSITORY: path.join(dir, "plain"), LIFEBOAT_PASSWORD: "pw" });
    await runOk(["init"], { env: local });
    assertCleanError(await run(["repair", "undelete"], { env: local }), 2, /keeps no object versions/);
  });
});
