/**
 * The default repository: with no -r and no password, `backup PATH` creates
 * $XDG_DATA_HOME/lifeboat/repo and a 0600 password file in $XDG_CONFIG_HOME/lifeboat/, says
 * where both are, and later commands work with no options at all.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { ExitCode } from "../../src/core/errors.js";
import {
  assertCleanError,
  assertTreesEqual,
  baseEnv,
  jsonLines,
  run,
  show,
  useWorkspace,
} from "../support/cli.js";

const ws = useWorkspace({
  setup: async () => {
    await fs.mkdir(path.join(ws.src, "docs"), { recursive: true });
    await fs.writeFile(path.join(ws.src, "docs", "letter.txt"), "Dear reader,\n");
    await fs.writeFile(path.join(ws.src, "notes.md"), "# notes\n");
  },
});

/**
 * A fresh "user": HOME and XDG folders inside the test folder, nothing else configured. `xdg`:
 * "set" points XDG_DATA_HOME and XDG_CONFIG_HOME elsewhere, "unset" leaves them out, "empty" sets
 * them to "" (which counts as unset).
 */
async function freshUser(name: string, xdg: "set" | "unset" | "empty" = "set") {
  const home = path.join(ws.base, name, "home");
  await fs.mkdir(home, { recursive: true });
  const set = xdg === "set";
  const data = set ? path.join(ws.base, name, "data") : path.join(home, ".local", "share");
  const config = set ? path.join(ws.base, name, "config") : path.join(home, ".config");
  const vars: Record<string, string> = {
    set: { XDG_DATA_HOME: data, XDG_CONFIG_HOME: config },
    unset: {},
    empty: { XDG_DATA_HOME: "", XDG_CONFIG_HOME: "" },
  }[xdg];
  return {
    env: baseEnv({ HOME: home, ...vars }),
    repo: path.join(data, "lifeboat", "repo"),
    passwordFile: path.join(config, "lifeboat", "password"),
  };
}

test("backup PATH with no repository and no password creates both and says where", async () => {
  const u = await freshUser("xdg");
  const src = ws.src;
  const r = await run(["backup", src], { env: u.env });
  assert.equal(r.code, 0, show(r));
  assert.ok(r.stdout.includes(u.repo), `the repository location is not printed:\n${show(r)}`);
  assert.ok(r.stdout.includes(u.passwordFile), `the password file location is not printed:\n${show(r)}`);
  assert.match(r.stdout, /keep a copy/i, "no advice to keep a copy of the password");
  const st = await fs.stat(u.passwordFile);
  assert.equal(st.mode & 0o777, 0o600, "password file mode");
  assert.ok((await fs.readFile(u.passwordFile, "utf8")).trim().length >= 16, "password too short");
  assert.equal(
    (await fs.stat(path.dirname(u.passwordFile))).mode & 0o077,
    0,
    "password folder is open to others",
  );
  await fs.stat(path.join(u.repo, "config"));

  // Later commands need no options at all.
  const snaps = await run(["snapshots"], { env: u.env });
  assert.equal(snaps.code, 0, show(snaps));
  assert.match(snaps.stdout, /1 snapshot\b/);
  assert.ok(snaps.stdout.includes(src));
  const out = path.join(ws.base, "xdg", "restored");
  const rr = await run(["restore", "latest", "--target", out, "--verify"], { env: u.env });
  assert.equal(rr.code, 0, show(rr));
  await assertTreesEqual(src, path.join(out, src));

  // A second backup reuses the repository and the password file.
  const pw = await fs.readFile(u.passwordFile, "utf8");
  const r2 = await run(["backup", src], { env: u.env });
  assert.equal(r2.code, 0, show(r2));
  assert.doesNotMatch(r2.stdout, /created/);
  assert.equal(await fs.readFile(u.passwordFile, "utf8"), pw);
  assert.match((await run(["snapshots"], { env: u.env })).stdout, /2 snapshots/);
});

for (const xdg of ["unset", "empty"] as const) {
  test(`with XDG variables ${xdg} the default lives under HOME (~/.local/share, ~/.config)`, async () => {
    const u = await freshUser(`home-only-${xdg}`, xdg);
    const r = await run(["backup", "--json", ws.src], { env: u.env });
    assert.equal(r.code, 0, show(r));
    const init = jsonLines(r.stdout).find((m) => m.message_type === "initialized");
    assert.deepEqual(init, {
      message_type: "initialized",
      repository: u.repo,
      password_file: u.passwordFile,
    });
    assert.equal((await fs.stat(u.passwordFile)).mode & 0o777, 0o600);
    const snaps = await run(["snapshots", "--json"], { env: u.env });
    assert.equal(snaps.code, 0, show(snaps));
    assert.equal((JSON.parse(snaps.stdout) as unknown[]).length, 1);
  });
}

test("with LIFEBOAT_PASSWORD set, the default repository uses it and writes no password file", async () => {
  const u = await freshUser("own-password");
  const env = { ...u.env, LIFEBOAT_PASSWORD: "my own" };
  const r = await run(["backup", ws.src], { env });
  assert.equal(r.code, 0, show(r));
  await assert.rejects(fs.stat(u.passwordFile), "a password file was written although a password was given");
  assert.equal((await run(["snapshots"], { env })).code, 0);
  assertCleanError(
    await run(["snapshots"], { env: { ...u.env, LIFEBOAT_PASSWORD: "not mine" } }),
    ExitCode.wrongPassword,
  );
});

test("commands other than backup do not create the default repository", async () => {
  const u = await freshUser("no-repo");
  const r = await run(["snapshots"], { env: u.env });
  assertCleanError(r, ExitCode.repoNotFound, /default repository .* does not exist yet/);
  assert.match(r.stderr, /lifeboat backup PATH/);
  await assert.rejects(fs.stat(u.repo));
  await assert.rejects(fs.stat(u.passwordFile));
});

test("backup of a missing path with no default repository yet: exit 2 and nothing created", async () => {
  const u = await freshUser("missing-path");
  const r = await run(["backup", path.join(ws.base, "does-not-exist")], { env: u.env });
  assertCleanError(r, ExitCode.usage, /does not exist/);
  // The error says "nothing was written"; neither a repository nor a password file may appear.
  await assert.rejects(fs.stat(u.repo), `a default repository was created at ${u.repo}`);
  await assert.rejects(fs.stat(u.passwordFile), `a password file was created at ${u.passwordFile}`);
});
