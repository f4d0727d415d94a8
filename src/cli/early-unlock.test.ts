import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { localBackend } from "../backend/local.js";
import { LifeboatError } from "../core/errors.js";
import { derivationsAhead } from "../repo/kdf.js";
import { Repository } from "../repo/repository.js";
import { unlockEarly } from "./early-unlock.js";

process.env.LIFEBOAT_KDF_N = "1024";
const params = { chunker: { min: 1024, avg: 4096, max: 16384 }, packSize: 64 * 1024 };

async function withRepo(run: (dir: string) => Promise<void>): Promise<void> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-early-"));
  try {
    const dir = path.join(tmp, "repo");
    await (await Repository.init(localBackend({ path: dir }), "pw", params)).close();
    await run(dir);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

const argv = (...a: string[]) => ["node", "main.js", ...a];

test("the key of a local repository's only key file is derived ahead, and opening takes it", () =>
  withRepo(async (dir) => {
    for (const [args, env] of [
      [argv("-r", dir, "restore", "latest", "--target", "x"), { LIFEBOAT_PASSWORD: "pw" }],
      [argv("snapshots", `--repo=local:${dir}`), { LIFEBOAT_PASSWORD: "pw" }],
      [argv("ls", "latest"), { LIFEBOAT_REPOSITORY: dir, LIFEBOAT_PASSWORD: "pw" }],
    ] as const) {
      unlockEarly(args, env);
      assert.equal(derivationsAhead(), 1, args.join(" "));
      await (await Repository.open(localBackend({ path: dir }), "pw")).close();
      assert.equal(derivationsAhead(), 0);
    }
    const pwFile = path.join(dir, "..", "pw.txt");
    await fs.writeFile(pwFile, "pw\n");
    unlockEarly(argv("-r", dir, "--password-file", pwFile, "check"), { LIFEBOAT_PASSWORD: "other" });
    assert.equal(derivationsAhead(), 1);
    await (await Repository.open(localBackend({ path: dir }), "pw")).close();
    assert.equal(derivationsAhead(), 0);
  }));

test("a password guessed ahead that is not the one used is dropped: the right one opens, a wrong one is refused", () =>
  withRepo(async (dir) => {
    unlockEarly(argv("-r", dir, "snapshots"), { LIFEBOAT_PASSWORD: "wrong" });
    assert.equal(derivationsAhead(), 1);
    await (await Repository.open(localBackend({ path: dir }), "pw")).close();
    assert.equal(derivationsAhead(), 0);
    unlockEarly(argv("-r", dir, "snapshots"), { LIFEBOAT_PASSWORD: "wrong" });
    await assert.rejects(
      Repository.open(localBackend({ path: dir }), "wrong"),
      (e) => e instanceof LifeboatError && e.code === "WRONG_PASSWORD",
    );
    assert.equal(derivationsAhead(), 0);
  }));

test("nothing is derived ahead where it would be a waste, a guess against the rules or a side effect", () =>
  withRepo(async (dir) => {
    const pw = { LIFEBOAT_PASSWORD: "pw" };
    const fifo = path.join(dir, "..", "pw.fifo");
    execFileSync("mkfifo", [fifo]);
    const cases: [string[], NodeJS.ProcessEnv][] = [
      [argv("-r", dir, "snapshots", "--help"), pw],
      [argv("-r", dir, "--version"), pw],
      [argv("-r", dir, "init"), pw],
      [argv("-r", dir, "serve"), pw],
      [argv("-r", dir), pw],
      // The command wins over LIFEBOAT_PASSWORD, and is never run twice.
      [argv("-r", dir, "--password-command", "echo pw", "snapshots"), pw],
      [argv("-r", dir, "snapshots"), { ...pw, LIFEBOAT_PASSWORD_COMMAND: "echo pw" }],
      [argv("-r", `s3:127.0.0.1:1/bucket`, "snapshots"), pw],
      [argv("-r", path.join(dir, "missing"), "snapshots"), pw],
      [argv("-r", dir, "snapshots"), {}],
      [argv("-r", dir, "--password-file", path.join(dir, "no-such-file"), "snapshots"), pw],
      // A pipe is the command's to read, once (`--password-file <(pass show x)`): not read here.
      [argv("-r", dir, "--password-file", fifo, "snapshots"), pw],
    ];
    for (const [args, env] of cases) {
      unlockEarly(args, env);
      assert.equal(derivationsAhead(), 0, args.join(" "));
    }
    // Two key files: which one the password opens is not known ahead.
    const keys = path.join(dir, "keys");
    const [only] = await fs.readdir(keys);
    await fs.copyFile(path.join(keys, only!), path.join(keys, "f".repeat(64)));
    unlockEarly(argv("-r", dir, "snapshots"), pw);
    assert.equal(derivationsAhead(), 0);
    // A damaged key file starts nothing (opening then says what is wrong).
    await fs.rm(path.join(keys, "f".repeat(64)));
    await fs.writeFile(path.join(keys, only!), "{not json");
    unlockEarly(argv("-r", dir, "snapshots"), pw);
    assert.equal(derivationsAhead(), 0);
  }));
