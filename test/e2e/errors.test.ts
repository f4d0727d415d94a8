/**
 * Every failure a user meets: the documented exit code (ExitCode), exactly one `error:` line
 * with a `hint:` on stderr (or one JSON line with --json), and the repository left unchanged.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { ExitCode } from "../../src/core/errors.js";
import {
  assertCleanError,
  assertJsonError,
  baseEnv,
  hasCommand,
  jsonLines,
  removeTempDir,
  repoEnv,
  run,
  runOk,
  show,
  snapshotListing,
  summaryOf,
  tempDir,
  useWorkspace,
} from "../support/cli.js";

const PW = "correct horse";
let base: string;
let repo: string;
let env: Record<string, string>;
let src: string;
let ids: string[] = [];

const ws = useWorkspace({
  password: PW,
  setup: async () => {
    ({ base, repo, env, src } = ws);
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, "file.txt"), "some data\n");
    await runOk(["backup", src], { env });
    // 17 snapshots: by the pigeonhole principle some first hex digit starts two of them.
    for (let i = 0; i < 16; i++) {
      await runOk(["backup", "--stdin", "--stdin-filename", `n${i}.txt`], { env, input: `snapshot ${i}\n` });
    }
    ids = (JSON.parse((await runOk(["snapshots", "--json"], { env })).stdout) as { id: string }[]).map(
      (s) => s.id,
    );
    assert.equal(ids.length, 17);
  },
});

/** Runs `fn` and asserts the repository folder is byte-for-byte the same afterwards. */
async function unchanged(dir: string, fn: () => Promise<void>): Promise<void> {
  const before = await snapshotListing(dir);
  await fn();
  assert.deepEqual(await snapshotListing(dir), before, `${dir} changed`);
}

describe("repository and password errors", () => {
  test("wrong password: exit 12", async () => {
    await unchanged(repo, async () => {
      const bad = repoEnv(repo, "wrong");
      assertCleanError(await run(["snapshots"], { env: bad }), ExitCode.wrongPassword, /wrong password/);
      assertCleanError(await run(["backup", src], { env: bad }), ExitCode.wrongPassword, /wrong password/);
      assertCleanError(
        await run(["restore", "latest", "--target", path.join(base, "never")], { env: bad }),
        ExitCode.wrongPassword,
      );
      assertJsonError(
        await run(["snapshots", "--json"], { env: bad }),
        ExitCode.wrongPassword,
        "WRONG_PASSWORD",
      );
    });
    await assert.rejects(
      fs.stat(path.join(base, "never")),
      "restore with a wrong password created its target",
    );
  });

  test("no password at all (no terminal to ask on): exit 12", async () => {
    await unchanged(repo, async () => {
      const r = await run(["snapshots"], { env: baseEnv({ LIFEBOAT_REPOSITORY: repo }) });
      assertCleanError(r, ExitCode.wrongPassword, /no repository password/);
      assert.match(r.stderr, /--password-file/, "the hint should say how to give a password");
    });
  });

  test("missing repository path: exit 10, nothing created", async () => {
    const missing = path.join(base, "no", "such", "repo");
    for (const args of [
      ["snapshots"],
      ["backup", src],
      ["restore", "latest", "--target", path.join(base, "t")],
    ]) {
      const r = await run(args, { env: repoEnv(missing, PW) });
      assertCleanError(r, ExitCode.repoNotFound, /no lifeboat repository/);
    }
    assertJsonError(
      await run(["snapshots", "--json"], { env: repoEnv(missing, PW) }),
      ExitCode.repoNotFound,
      "REPO_NOT_FOUND",
    );
    await assert.rejects(fs.stat(path.join(base, "no")), "a missing repository path was created");
  });

  test("a folder that is not a repository: exit 10, folder untouched", async () => {
    const notRepo = path.join(base, "not-a-repo");
    await fs.mkdir(notRepo);
    await fs.writeFile(path.join(notRepo, "hello.txt"), "I am not a repository\n");
    await unchanged(notRepo, async () => {
      for (const args of [["snapshots"], ["backup", src], ["key", "list"]]) {
        const r = await run(args, { env: repoEnv(notRepo, PW) });
        assertCleanError(r, ExitCode.repoNotFound, /no lifeboat repository/);
      }
    });
  });

  test("second init: exit 11, repository untouched", async () => {
    await unchanged(repo, async () => {
      assertCleanError(await run(["init"], { env }), ExitCode.repoExists, /already exists/);
      assertCleanError(await run(["init"], { env: repoEnv(repo, "another password") }), ExitCode.repoExists);
      assertJsonError(await run(["init", "--json"], { env }), ExitCode.repoExists, "REPO_EXISTS");
    });
  });
});

describe("snapshot lookup errors", () => {
  test("an id prefix matching nothing: exit 13", async () => {
    const used = new Set(ids.map((i) => i.slice(0, 4)));
    let prefix = "0000";
    for (let n = 0; used.has(prefix); n++) prefix = n.toString(16).padStart(4, "0");
    await unchanged(repo, async () => {
      assertCleanError(
        await run(["restore", prefix, "--target", path.join(base, "t13")], { env }),
        ExitCode.snapshotNotFound,
        new RegExp(`no snapshot id starts with ${prefix}`),
      );
      assertCleanError(await run(["ls", prefix], { env }), ExitCode.snapshotNotFound);
      for (const ref of ["not-an-id", "../../etc"])
        assertCleanError(await run(["ls", ref], { env }), ExitCode.snapshotNotFound, /not a snapshot id/);
      assertJsonError(
        await run(["ls", prefix, "--json"], { env }),
        ExitCode.snapshotNotFound,
        "SNAPSHOT_NOT_FOUND",
      );
    });
  });

  test("an ambiguous one-character prefix: exit 13 listing the candidates", async () => {
    const counts = new Map<string, number>();
    for (const id of ids) counts.set(id[0]!, (counts.get(id[0]!) ?? 0) + 1);
    const [prefix, n] = [...counts].find(([, c]) => c > 1)!;
    await unchanged(repo, async () => {
      const r = await run(["restore", prefix, "--target", path.join(base, "t13b")], { env });
      assertCleanError(r, ExitCode.snapshotNotFound, new RegExp(`${prefix} matches ${n} snapshots`));
      assertCleanError(
        await run(["ls", prefix], { env }),
        ExitCode.snapshotNotFound,
        new RegExp(`${prefix} matches ${n} snapshots`),
      );
      assertJsonError(
        await run(["ls", prefix, "--json"], { env }),
        ExitCode.snapshotNotFound,
        "SNAPSHOT_AMBIGUOUS",
      );
    });
    // A longer, unique prefix of the same id works.
    const full = ids.find((i) => i.startsWith(prefix))!;
    await runOk(["ls", full.slice(0, 12)], { env });
  });

  test("latest in an empty repository: exit 13", async () => {
    const empty = path.join(base, "empty-repo");
    const e = repoEnv(empty, PW);
    await runOk(["init"], { env: e });
    const r = await run(["restore", "latest", "--target", path.join(base, "t-empty")], { env: e });
    assertCleanError(r, ExitCode.snapshotNotFound, /no snapshot/);
  });
});

describe("backup source errors", () => {
  test("backup of a path that does not exist: exit 2, nothing written", async () => {
    await unchanged(repo, async () => {
      const missing = path.join(base, "does-not-exist");
      assertCleanError(await run(["backup", missing], { env }), ExitCode.usage, /does not exist/);
      // Also when given next to a path that does exist.
      assertCleanError(await run(["backup", src, missing], { env }), ExitCode.usage, /does not exist/);
      assertJsonError(await run(["backup", "--json", missing], { env }), ExitCode.usage, "USAGE");
    });
  });

  test("backup with no paths: exit 2", async () => {
    await unchanged(repo, async () => {
      assertCleanError(await run(["backup"], { env }), ExitCode.usage, /no paths/);
    });
  });

  test("unreadable files (as an unprivileged user): exit 3, snapshot saved and marked incomplete", async (t) => {
    const isRoot = process.getuid?.() === 0;
    let wrapper: string[] = [];
    if (isRoot) {
      if (await hasCommand("setpriv"))
        wrapper = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"];
      else if (await hasCommand("runuser")) wrapper = ["runuser", "-u", "nobody", "--"];
      else return t.skip("running as root and neither setpriv nor runuser is available to drop privileges");
    }
    const u = await tempDir();
    try {
      await fs.chmod(u, 0o755);
      const usrc = path.join(u, "src");
      const urepo = path.join(u, "repo");
      await fs.mkdir(path.join(usrc, "sub"), { recursive: true });
      await fs.mkdir(path.join(usrc, "locked"));
      await fs.writeFile(path.join(usrc, "ok.txt"), "readable\n");
      await fs.writeFile(path.join(usrc, "sub", "also-ok.txt"), "readable too\n");
      await fs.writeFile(path.join(usrc, "secret.txt"), "not for you\n", { mode: 0o600 });
      await fs.writeFile(path.join(usrc, "locked", "inner.txt"), "behind a locked door\n");
      await fs.chmod(path.join(usrc, "secret.txt"), isRoot ? 0o600 : 0o000);
      await fs.chmod(path.join(usrc, "locked"), isRoot ? 0o700 : 0o000);
      await fs.mkdir(urepo);
      if (isRoot) await fs.chown(urepo, 65534, 65534);
      const uenv = repoEnv(urepo, PW, { HOME: u });
      const ir = await run(["init"], { env: uenv, wrapper });
      assert.equal(ir.code, 0, show(ir));

      const r = await run(["backup", usrc], { env: uenv, wrapper });
      assert.equal(r.code, ExitCode.incomplete, show(r));
      assert.match(r.stderr, /warning: could not read .*secret\.txt/);
      assert.match(r.stderr, /warning: could not read .*locked/);
      assert.match(r.stdout, /INCOMPLETE/);

      const rj = await run(["backup", "--json", usrc], { env: uenv, wrapper });
      assert.equal(rj.code, ExitCode.incomplete, show(rj));
      const s = summaryOf(rj);
      assert.equal(s.incomplete, true);
      assert.equal((s.errors as string[]).length, 2, JSON.stringify(s.errors));
      const warnings = jsonLines(rj.stderr);
      assert.ok(
        warnings.every((w) => w.message_type === "warning"),
        rj.stderr,
      );
      assert.equal(warnings.length, 2, rj.stderr);

      const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env: uenv })).stdout) as {
        incomplete: boolean;
        errors: string[];
      }[];
      assert.equal(snaps.length, 2);
      for (const sn of snaps) {
        assert.equal(sn.incomplete, true);
        assert.ok(
          sn.errors.some((e) => e.includes("secret.txt")),
          JSON.stringify(sn.errors),
        );
      }
      assert.match((await runOk(["snapshots"], { env: uenv })).stdout, /incomplete/);

      // What could be read restores.
      const out = path.join(u, "out");
      await runOk(["restore", `latest:${usrc}`, "--target", out], { env: uenv });
      assert.equal(await fs.readFile(path.join(out, "ok.txt"), "utf8"), "readable\n");
      assert.equal(await fs.readFile(path.join(out, "sub", "also-ok.txt"), "utf8"), "readable too\n");
      await assert.rejects(fs.stat(path.join(out, "secret.txt")));
    } finally {
      await removeTempDir(u);
    }
  });
});

describe("usage errors", () => {
  test("restore without --target, or an unknown command: exit 2 with an error line", async () => {
    await unchanged(repo, async () => {
      for (const args of [["restore", "latest"], ["no-such-command"], ["backup", "--no-such-flag", src]]) {
        const r = await run(args, { env });
        assert.equal(r.code, ExitCode.usage, show(r));
        assert.equal(r.stderr.split("\n").filter((l) => l.startsWith("error:")).length, 1, show(r));
      }
    });
  });

  test("--help: exit 0", async () => {
    const r = await run(["--help"], { env });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /backup/);
  });
});
