import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, jsonLines, listAll, run, tempDir } from "../support/cli.js";

let dir: string;
let repo: string;
let env: Record<string, string>;

before(async () => {
  dir = await tempDir();
  repo = path.join(dir, "repo");
  env = baseEnv({ LIFEBOAT_PASSWORD: "right" });
  await fs.mkdir(path.join(dir, "src"));
  await fs.writeFile(path.join(dir, "src", "a"), "a\n");
  assert.equal((await run(["-r", repo, "init"], { env })).code, 0);
  for (let i = 0; i < 20; i++) {
    assert.equal(
      (await run(["-r", repo, "backup", path.join(dir, "src"), "--tag", `n${i}`], { env })).code,
      0,
    );
  }
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Each failure: the documented exit code, one `error:` line with a hint, repository untouched. */
async function expectError(args: string[], code: number, message: RegExp, e = env) {
  const before = await listAll(repo);
  const r = await run(args, { env: e });
  assert.equal(r.code, code, `exit code of ${args.join(" ")}: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.match(lines[0]!, /^error: /);
  assert.match(lines[0]!, message);
  assert.match(r.stderr, /hint: /);
  assert.deepEqual(await listAll(repo), before);
  return r;
}

test("wrong password: exit 12", async () => {
  await expectError(["-r", repo, "snapshots"], 12, /wrong password/, baseEnv({ LIFEBOAT_PASSWORD: "wrong" }));
});

test("no password at all: exit 12 and says how to give one", async () => {
  const r = await expectError(["-r", repo, "snapshots"], 12, /no repository password/, baseEnv());
  assert.match(r.stderr, /--password-file/);
});

test("missing repository and a folder that is not a repository: exit 10", async () => {
  await expectError(["-r", path.join(dir, "nope"), "snapshots"], 10, /no lifeboat repository/);
  await expectError(["-r", path.join(dir, "src"), "snapshots"], 10, /no lifeboat repository/);
});

test("a second init: exit 11, nothing changed", async () => {
  await expectError(["-r", repo, "init"], 11, /already exists/);
});

test("a snapshot id that matches nothing, or several: exit 13", async () => {
  await expectError(
    ["-r", repo, "restore", "ffffffffff", "--target", path.join(dir, "t")],
    13,
    /no snapshot id starts with/,
  );
  const ids = JSON.parse((await run(["-r", repo, "snapshots", "--json"], { env })).stdout) as {
    id: string;
  }[];
  const counts = new Map<string, number>();
  for (const s of ids) counts.set(s.id[0]!, (counts.get(s.id[0]!) ?? 0) + 1);
  const shared = [...counts].find(([, n]) => n > 1)![0];
  await expectError(["-r", repo, "ls", shared], 13, /matches \d+ snapshots/);
  await expectError(["-r", repo, "ls", "../../etc"], 13, /not a snapshot id/);
});

test("backing up a path that does not exist: exit 2, nothing written", async () => {
  await expectError(["-r", repo, "backup", path.join(dir, "missing")], 2, /does not exist/);
});

test("unknown options and commands: exit 2", async () => {
  assert.equal((await run(["-r", repo, "backup", "--no-such-flag"], { env })).code, 2);
  assert.equal((await run(["frobnicate"], { env })).code, 2);
  assert.equal((await run(["--help"], { env })).code, 0);
});

test("--json errors are one JSON line on stderr", async () => {
  const r = await run(["-r", repo, "snapshots", "--json"], { env: baseEnv({ LIFEBOAT_PASSWORD: "wrong" }) });
  assert.equal(r.code, 12);
  const [line] = jsonLines(r.stderr);
  assert.equal(line!.message_type, "error");
  assert.equal(line!.code, "WRONG_PASSWORD");
});

test("unreadable files: snapshot saved, marked incomplete, exit 3", async (t) => {
  const runas = spawnSync("sh", ["-c", "command -v setpriv"]).status === 0;
  if (!runas || process.getuid?.() !== 0) {
    t.skip("needs root and setpriv to read as an unprivileged user");
    return;
  }
  const shared = await tempDir("lifeboat-unreadable-");
  try {
    await fs.chmod(shared, 0o777);
    const src = path.join(shared, "src");
    await fs.mkdir(src, { mode: 0o777 });
    await fs.writeFile(path.join(src, "ok.txt"), "readable\n", { mode: 0o644 });
    await fs.writeFile(path.join(src, "secret.txt"), "no\n", { mode: 0o600 });
    await fs.chmod(path.join(src, "ok.txt"), 0o644);
    await fs.chmod(path.join(src, "secret.txt"), 0o600);
    const userRepo = path.join(shared, "repo");
    const cli = (args: string[]) =>
      spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, ...args], {
        env: { ...baseEnv({ LIFEBOAT_PASSWORD: "pw", HOME: shared }) },
        encoding: "utf8",
      });
    const { CLI } = await import("../support/cli.js");
    assert.equal(cli([CLI, "-r", userRepo, "init"]).status, 0);
    const b = cli([CLI, "-r", userRepo, "backup", src]);
    assert.equal(b.status, 3, b.stderr);
    assert.match(b.stderr, /secret\.txt/);
    assert.match(b.stdout, /INCOMPLETE/);
    const snaps = JSON.parse(cli([CLI, "-r", userRepo, "snapshots", "--json"]).stdout) as {
      incomplete: boolean;
      errors: string[];
    }[];
    assert.equal(snaps.length, 1);
    assert.equal(snaps[0]!.incomplete, true);
    assert.match(snaps[0]!.errors[0]!, /secret\.txt/);
  } finally {
    await fs.rm(shared, { recursive: true, force: true });
  }
});
