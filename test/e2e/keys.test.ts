/** Passwords: key add / list / remove / passwd, and the data stays readable throughout. */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { ExitCode } from "../../src/core/errors.js";
import {
  assertCleanError,
  baseEnv,
  jsonLines,
  run,
  runOk,
  show,
  snapshotListing,
  useWorkspace,
  withTempDir,
} from "../support/cli.js";

const pwFile: Record<string, string> = {};

interface Key {
  id: string;
  current: boolean;
}

/** Environment that opens the repository with password file `name`. */
const as = (name: string) => baseEnv({ LIFEBOAT_REPOSITORY: ws.repo, LIFEBOAT_PASSWORD_FILE: pwFile[name]! });

async function keys(name: string): Promise<Key[]> {
  return JSON.parse((await runOk(["key", "list", "--json"], { env: as(name) })).stdout) as Key[];
}

async function canRestore(name: string) {
  await withTempDir(async (out) => {
    const r = await run(["restore", `latest:${ws.src}`, "--target", out, "--verify"], { env: as(name) });
    assert.equal(r.code, 0, show(r));
    assert.equal(await fs.readFile(path.join(out, "secret.txt"), "utf8"), "the data\n");
  });
}

const ws = useWorkspace({
  setup: async () => {
    await fs.mkdir(ws.src);
    await fs.writeFile(path.join(ws.src, "secret.txt"), "the data\n");
    for (const [n, pw] of [
      ["one", "first password"],
      ["two", "second password"],
      ["three", "third password ✓ unicode"],
      ["four", "fourth password"],
      ["bad", "not a password of this repository"],
    ]) {
      pwFile[n!] = path.join(ws.base, `${n}.pw`);
      await fs.writeFile(pwFile[n!]!, `${pw}\n`, { mode: 0o600 });
    }
    await runOk(["init", "--password-file", pwFile.one!], { env: baseEnv({ LIFEBOAT_REPOSITORY: ws.repo }) });
    await runOk(["backup", ws.src], { env: as("one") });
  },
});

test("key add --new-password-file: both passwords open the repository", async () => {
  const r = await run(["key", "add", "--new-password-file", pwFile.two!], { env: as("one") });
  assert.equal(r.code, 0, show(r));
  const k1 = await keys("one");
  const k2 = await keys("two");
  assert.equal(k1.length, 2);
  assert.deepEqual(
    k1.map((k) => k.id),
    k2.map((k) => k.id),
  );
  // Each password marks its own key as current.
  const cur1 = k1.find((k) => k.current)!.id;
  const cur2 = k2.find((k) => k.current)!.id;
  assert.notEqual(cur1, cur2);
  await canRestore("one");
  await canRestore("two");
});

test("key add with no new password given (no terminal): exit 12, nothing added", async () => {
  const before = await snapshotListing(ws.repo);
  const r = await run(["key", "add"], { env: as("one") });
  assertCleanError(r, ExitCode.wrongPassword, /new password/);
  assert.match(r.stderr, /new-password-file/, "the hint should say how to give the new password");
  assert.deepEqual(await snapshotListing(ws.repo), before);
});

test("the key in use cannot be removed; another password can remove it", async () => {
  const first = (await keys("one")).find((k) => k.current)!.id;
  const before = await snapshotListing(ws.repo);
  const self = await run(["key", "remove", first.slice(0, 10)], { env: as("one") });
  assertCleanError(self, ExitCode.failure, /refusing to remove the key/);
  assert.deepEqual(await snapshotListing(ws.repo), before);

  const r = await run(["key", "remove", first.slice(0, 10)], { env: as("two") });
  assert.equal(r.code, 0, show(r));
  assert.equal((await keys("two")).length, 1);
  assertCleanError(await run(["snapshots"], { env: as("one") }), ExitCode.wrongPassword, /wrong password/);
  await canRestore("two");
});

test("key passwd changes the password; the old one stops working", async () => {
  const r = await run(["key", "passwd", "--new-password-file", pwFile.three!], { env: as("two") });
  assert.equal(r.code, 0, show(r));
  assertCleanError(await run(["snapshots"], { env: as("two") }), ExitCode.wrongPassword);
  const k = await keys("three");
  assert.equal(k.length, 1);
  assert.ok(k[0]!.current);
  await canRestore("three");
});

test("key passwd --json with LIFEBOAT_NEW_PASSWORD: a key_changed line; the old password stops working", async () => {
  const four = (await fs.readFile(pwFile.four!, "utf8")).trim();
  const r = await run(["key", "passwd", "--json"], { env: { ...as("three"), LIFEBOAT_NEW_PASSWORD: four } });
  assert.equal(r.code, 0, show(r));
  assert.equal(jsonLines(r.stdout)[0]!.message_type, "key_changed", show(r));
  assertCleanError(await run(["snapshots"], { env: as("three") }), ExitCode.wrongPassword);
  await canRestore("four");
});

test("key passwd / add / remove with a wrong old password: exit 12, keys unchanged", async () => {
  const before = await snapshotListing(ws.repo);
  for (const args of [
    ["key", "passwd", "--new-password-file", pwFile.one!],
    ["key", "add", "--new-password-file", pwFile.one!],
    ["key", "remove", (await keys("four"))[0]!.id.slice(0, 8)],
    ["key", "list"],
  ]) {
    assertCleanError(await run(args, { env: as("bad") }), ExitCode.wrongPassword, /wrong password/);
  }
  assert.deepEqual(await snapshotListing(ws.repo), before);
  await canRestore("four");
});
