/** Passwords: key add / list / remove / passwd, and the data stays readable throughout. */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { ExitCode } from "../../src/core/errors.js";
import {
  assertCleanError,
  cliEnv,
  makeTempDir,
  removeTempDir,
  runCli,
  runOk,
  show,
  snapshotListing,
} from "../helpers/cli.js";

let base: string;
let repo: string;
let src: string;
const pwFile: Record<string, string> = {};

interface Key {
  id: string;
  current: boolean;
}

/** Environment that opens the repository with password file `name`. */
const as = (name: string) => cliEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD_FILE: pwFile[name]! });

async function keys(name: string): Promise<Key[]> {
  return JSON.parse((await runOk(["key", "list", "--json"], { env: as(name) })).stdout) as Key[];
}

async function canRestore(name: string) {
  const out = await makeTempDir();
  try {
    const r = await runCli(["restore", `latest:${src}`, "--target", out, "--verify"], { env: as(name) });
    assert.equal(r.code, 0, show(r));
    assert.equal(await fs.readFile(path.join(out, "secret.txt"), "utf8"), "the data\n");
  } finally {
    await removeTempDir(out);
  }
}

before(async () => {
  base = await makeTempDir();
  repo = path.join(base, "repo");
  src = path.join(base, "src");
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, "secret.txt"), "the data\n");
  for (const [n, pw] of [
    ["one", "first password"],
    ["two", "second password"],
    ["three", "third password ✓ unicode"],
    ["bad", "not a password of this repository"],
  ]) {
    pwFile[n!] = path.join(base, `${n}.pw`);
    await fs.writeFile(pwFile[n!]!, `${pw}\n`, { mode: 0o600 });
  }
  await runOk(["init", "--password-file", pwFile.one!], { env: cliEnv({ LIFEBOAT_REPOSITORY: repo }) });
  await runOk(["backup", src], { env: as("one") });
});
after(async () => {
  if (base) await removeTempDir(base);
});

test("key add --new-password-file: both passwords open the repository", async () => {
  const r = await runCli(["key", "add", "--new-password-file", pwFile.two!], { env: as("one") });
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
  const before = await snapshotListing(repo);
  assertCleanError(await runCli(["key", "add"], { env: as("one") }), ExitCode.wrongPassword, /new password/);
  assert.deepEqual(await snapshotListing(repo), before);
});

test("the key in use cannot be removed; another password can remove it", async () => {
  const first = (await keys("one")).find((k) => k.current)!.id;
  const before = await snapshotListing(repo);
  const self = await runCli(["key", "remove", first.slice(0, 10)], { env: as("one") });
  assertCleanError(self, ExitCode.failure, /refusing to remove the key/);
  assert.deepEqual(await snapshotListing(repo), before);

  const r = await runCli(["key", "remove", first.slice(0, 10)], { env: as("two") });
  assert.equal(r.code, 0, show(r));
  assert.equal((await keys("two")).length, 1);
  assertCleanError(await runCli(["snapshots"], { env: as("one") }), ExitCode.wrongPassword, /wrong password/);
  await canRestore("two");
});

test("key passwd changes the password; the old one stops working", async () => {
  const r = await runCli(["key", "passwd", "--new-password-file", pwFile.three!], { env: as("two") });
  assert.equal(r.code, 0, show(r));
  assertCleanError(await runCli(["snapshots"], { env: as("two") }), ExitCode.wrongPassword);
  const k = await keys("three");
  assert.equal(k.length, 1);
  assert.ok(k[0]!.current);
  await canRestore("three");
});

test("key passwd / add / remove with a wrong old password: exit 12, keys unchanged", async () => {
  const before = await snapshotListing(repo);
  for (const args of [
    ["key", "passwd", "--new-password-file", pwFile.one!],
    ["key", "add", "--new-password-file", pwFile.one!],
    ["key", "remove", (await keys("three"))[0]!.id.slice(0, 8)],
    ["key", "list"],
  ]) {
    assertCleanError(await runCli(args, { env: as("bad") }), ExitCode.wrongPassword, /wrong password/);
  }
  assert.deepEqual(await snapshotListing(repo), before);
  await canRestore("three");
});
