/**
 * The config file and scheduled jobs through the CLI: defaults from the file (flags and the
 * environment still win), `run` with retention per job, `run --due`, the daemon, and one clear
 * line for a broken file.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { JobStore, readState } from "../../src/app/jobs.js";
import { baseEnv, CLI, jsonLines, run, tempDir } from "../support/cli.js";

let dir: string;
let env: Record<string, string>;
let configFile: string;

before(async () => {
  dir = await tempDir("lifeboat-config-");
  for (const name of ["docs", "photos"]) {
    await fs.mkdir(path.join(dir, name));
    await fs.writeFile(path.join(dir, name, "a.txt"), `${name}\n`);
  }
  await fs.writeFile(path.join(dir, "pw"), "config password\n");
  configFile = path.join(dir, "config.json");
  await fs.writeFile(
    configFile,
    JSON.stringify({
      repository: path.join(dir, "repo"),
      passwordFile: path.join(dir, "pw"),
      jobs: [
        { name: "docs", backup: [path.join(dir, "docs")], every: "1h", keep: { last: 2 }, prune: true },
        { name: "photos", backup: path.join(dir, "photos"), every: "1d", tags: ["pics"] },
      ],
    }),
  );
  // No LIFEBOAT_* variables: everything comes from the file; state goes to a private folder.
  env = baseEnv({ LIFEBOAT_CONFIG: configFile, XDG_STATE_HOME: path.join(dir, "state") });
  assert.equal((await run(["init"], { env })).code, 0);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function snapshots(e = env): Promise<{ tags: string[]; paths: string[] }[]> {
  const r = await run(["snapshots", "--json"], { env: e });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test("run: every job, tagged with its name; retention applies to its own snapshots only", async () => {
  for (let i = 0; i < 3; i++) {
    await fs.appendFile(path.join(dir, "docs", "a.txt"), `edit ${i}\n`);
    const r = await run(["run", "--json"], { env });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(
      jsonLines(r.stdout)
        .filter((l) => l.message_type === "job")
        .map((l) => [l.job, l.code]),
      [
        ["docs", 0],
        ["photos", 0],
      ],
    );
  }
  const snaps = await snapshots();
  const docs = snaps.filter((s) => s.tags.includes("job:docs"));
  const photos = snaps.filter((s) => s.tags.includes("job:photos"));
  assert.equal(docs.length, 2, "keep.last 2 for docs");
  assert.equal(photos.length, 3, "photos has no policy: all kept");
  assert.ok(photos.every((s) => s.tags.includes("pics")));
  const state = await readState(path.join(dir, "state", "lifeboat", "state.db"));
  assert.equal(state.docs?.lastExitCode, 0);
  assert.equal(state.docs?.runningPid, undefined, "the finished run is no longer marked running");
});

test("run --due skips jobs that ran within their period; the daemon runs due jobs and stops on SIGTERM", async () => {
  const before = (await snapshots()).length;
  const r = await run(["run", "--due"], { env });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /job docs: not due yet/);
  assert.equal((await snapshots()).length, before);

  // Make photos due by ageing its state, then let the daemon pick it up.
  const store = await JobStore.open(path.join(dir, "state", "lifeboat", "state.db"));
  await store.update("photos", (s) => ({
    ...s,
    lastRun: new Date(Date.now() - 2 * 86_400_000).toISOString(),
  }));
  store.close();
  const child = spawn(process.execPath, [CLI, "--json", "daemon", "--tick", "1s"], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const deadline = Date.now() + 60_000;
  while (!out.includes('"job":"photos"') && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 200));
  child.kill("SIGTERM");
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(code, 0);
  assert.match(out, /"job":"photos","code":0/);
  assert.doesNotMatch(out, /"job":"docs"/, "docs was not due");
  assert.equal((await snapshots()).length, before + 1);
});

test("a jobs.json of an earlier version is imported once, and renamed, not deleted", async () => {
  const state = path.join(dir, "state-import");
  await fs.mkdir(path.join(state, "lifeboat"), { recursive: true });
  const legacy = path.join(state, "lifeboat", "jobs.json");
  const recent = new Date(Date.now() - 60_000).toISOString();
  await fs.writeFile(
    legacy,
    JSON.stringify({
      docs: { lastRun: recent, lastSuccess: recent, lastExitCode: 0 },
      photos: { lastRun: recent },
    }),
  );
  const e = { ...env, XDG_STATE_HOME: state };
  const before = (await snapshots()).length;
  const r = await run(["run", "--due"], { env: e });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /job docs: not due yet/);
  assert.match(r.stdout, /job photos: not due yet/);
  assert.equal((await snapshots()).length, before, "both ran a minute ago by the imported state");
  await assert.rejects(fs.access(legacy));
  assert.deepEqual(JSON.parse(await fs.readFile(`${legacy}.imported`, "utf8")).docs.lastExitCode, 0);
  const imported = await readState(path.join(state, "lifeboat", "state.db"));
  assert.equal(imported.docs?.lastSuccess, recent);
  // A stray jobs.json written later never overwrites the store's newer state.
  await fs.writeFile(legacy, JSON.stringify({ docs: { lastRun: "2020-01-01T00:00:00.000Z" } }));
  assert.equal((await readState(path.join(state, "lifeboat", "state.db"))).docs?.lastRun, recent);
});

test("two `run --due` at once: each due job runs once, the state store stays whole", async () => {
  const e = { ...env, XDG_STATE_HOME: path.join(dir, "state-race") };
  const photos = async () => (await snapshots()).filter((s) => s.tags.includes("job:photos")).length;
  const before = await photos();
  const [a, b] = await Promise.all([
    run(["--json", "run", "--due"], { env: e }),
    run(["--json", "run", "--due"], { env: e }),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const ran = [...jsonLines(a.stdout), ...jsonLines(b.stdout)]
    .filter((l) => l.message_type === "job")
    .map((l) => l.job);
  assert.deepEqual(ran.sort(), ["docs", "photos"]);
  assert.equal(await photos(), before + 1, "photos (no retention) has exactly one more snapshot");
  const state = await readState(path.join(dir, "state-race", "lifeboat", "state.db"));
  assert.equal(state.docs?.lastExitCode, 0);
  assert.equal(state.photos?.lastExitCode, 0);
});

test("flags and the environment win over the file; a broken file is one clear line", async () => {
  const other = path.join(dir, "other-repo");
  const r = await run(["-r", other, "--password-file", path.join(dir, "pw"), "init"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await snapshots({ ...env, LIFEBOAT_REPOSITORY: other })).length, 0);

  const bad = path.join(dir, "bad.json");
  await fs.writeFile(bad, JSON.stringify({ jobs: [{ name: "x", backup: "/tmp", pull: "imap://a@b" }] }));
  const b = await run(["snapshots"], { env: { ...env, LIFEBOAT_CONFIG: bad } });
  assert.equal(b.code, 2);
  assert.match(b.stderr, /bad\.json: jobs\.0: a job has either `backup` or `pull`/);
  const missing = await run(["--config", path.join(dir, "nope.json"), "snapshots"], { env });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.json does not exist/);
});
