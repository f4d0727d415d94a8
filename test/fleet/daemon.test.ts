/**
 * A fleet in real time: `lifeboat daemon` runs the config file's job and fleet on one tick loop
 * over one state store (state.db), backs up accounts whose window is open now and, restarted, does
 * not run them again in the same window; a fleet's `fleet-NAME.db` from an earlier version stays
 * in use; `fleet run --metrics` serves the status figures to Prometheus. All stop cleanly on
 * SIGTERM.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import { readState } from "../../src/app/jobs.js";
import { jsonLines, removeTempDir, repoEnv, run, show, startCli, tempDir, waitFor } from "../support/cli.js";
import { freePort } from "../support/servers.js";

let base: string;
let env: Record<string, string>;
let cfg: string;
let stateDir: string;

/** A window around now (UTC) whose first half has passed: every account is due at once. */
function windowAroundNow(): string {
  const h = new Date().getUTCHours();
  const pad = (n: number) => String((n + 24) % 24).padStart(2, "0");
  return `${pad(h - 3)}:00-${pad(h + 2)}:00`;
}

before(async () => {
  base = await tempDir("lifeboat-fleet-daemon-");
  env = repoEnv(path.join(base, "repo"), "pw", { XDG_STATE_HOME: path.join(base, "state") });
  stateDir = path.join(base, "state", "lifeboat");
  await fs.mkdir(path.join(base, "docs"));
  await fs.writeFile(path.join(base, "docs", "a.txt"), "docs\n");
  assert.equal((await run(["init"], { env })).code, 0);
  const lines = [];
  for (const id of ["ann", "bob", "cy"]) {
    const dir = path.join(base, "srv", id);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, "note.txt"), `${id}\n`);
    lines.push(JSON.stringify({ id, timezone: "Etc/UTC", path: dir }));
  }
  await fs.writeFile(path.join(base, "a.jsonl"), `${lines.join("\n")}\n`);
  cfg = path.join(base, "config.json");
  await fs.writeFile(
    cfg,
    JSON.stringify({
      jobs: [{ name: "docs", backup: path.join(base, "docs"), every: "1d" }],
      fleets: [{ name: "mini", accounts: { file: path.join(base, "a.jsonl") }, window: windowAroundNow() }],
    }),
  );
});

after(async () => {
  if (base) await removeTempDir(base);
});

/** Rows of one table of a state file, read as another process would. */
function rows(file: string, sql: string, ...p: unknown[]): Record<string, unknown>[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all(...p) as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

async function fleetSnapshots(host: string): Promise<unknown[]> {
  const r = await run(["--json", "snapshots", "--host", host], { env });
  assert.equal(r.code, 0, show(r));
  return jsonLines(r.stdout)[0] as unknown as unknown[];
}

test("lifeboat daemon runs the config's job and fleet on one tick, with one state file", async () => {
  const d = startCli(["--config", cfg, "--json", "daemon", "--tick", "1s"], { env });
  let jobDone = false;
  const backedUp = async () => {
    jobDone ||=
      ((await readState(path.join(stateDir, "state.db")).catch(() => ({}))) as Record<string, unknown>)
        .docs !== undefined;
    return jobDone && (await fleetSnapshots("mini")).length === 3;
  };
  const ok = await waitFor(backedUp, 60_000, 500);
  d.child.kill("SIGTERM");
  const out = await d.done;
  assert.ok(ok, show(out));
  assert.equal(out.code, 0, show(out));
  const events = jsonLines(out.stdout).filter((m) => m.message_type === "fleet_account");
  assert.deepEqual(events.map((e) => e.account).sort(), ["ann", "bob", "cy"]);
  assert.ok(jsonLines(out.stdout).some((m) => m.message_type === "job" && m.job === "docs" && m.code === 0));
  // One file: the job's row and the fleet's accounts side by side; no jobs.json, no fleet-mini.db.
  const files = (await fs.readdir(stateDir)).filter((f) => !/\.db-(wal|shm)$/.test(f));
  assert.deepEqual(files.sort(), ["state.db"], files.join(" "));
  const db = path.join(stateDir, "state.db");
  assert.equal(
    JSON.parse(rows(db, "SELECT state FROM lifeboat_jobs WHERE name = 'docs'")[0]!.state as string)
      .lastExitCode,
    0,
  );
  assert.equal(rows(db, "SELECT id FROM lifeboat_fleet_accounts WHERE fleet = 'mini'").length, 3);
  assert.equal(
    rows(db, "SELECT id FROM lifeboat_fleet_runs WHERE fleet = 'mini' AND outcome = 'snapshot'").length,
    3,
  );
});

test("a restarted daemon runs no account (and no job) again in the same window", async () => {
  // A new account shows that the restarted daemon ticks: it alone is backed up.
  const dir = path.join(base, "srv", "dee");
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, "note.txt"), "dee\n");
  await fs.appendFile(
    path.join(base, "a.jsonl"),
    `${JSON.stringify({ id: "dee", timezone: "Etc/UTC", path: dir })}\n`,
  );
  const d = startCli(["--config", cfg, "--json", "daemon", "--tick", "1s"], { env });
  const ok = await waitFor(async () => (await fleetSnapshots("mini")).length === 4, 60_000, 500);
  await new Promise((r) => setTimeout(r, 3000)); // three more ticks
  d.child.kill("SIGTERM");
  const out = await d.done;
  assert.ok(ok, show(out));
  assert.equal(out.code, 0, show(out));
  assert.equal((await fleetSnapshots("mini")).length, 4, show(out));
  const started = jsonLines(out.stdout).filter(
    (m) => m.message_type === "fleet_account" || m.message_type === "job",
  );
  assert.deepEqual(
    started.map((m) => m.account ?? m.job),
    ["dee"],
    show(out),
  );
});

test("a fleet's fleet-NAME.db from an earlier version stays in use: no account runs twice in a window", async () => {
  const legacy = path.join(stateDir, "fleet-old.db");
  const fleet = { name: "old", accounts: { file: path.join(base, "a.jsonl") }, window: "01:00-05:00" };
  // An earlier version kept the fleet in fleet-old.db: the same file, given explicitly.
  const oldCfg = path.join(base, "old.json");
  await fs.writeFile(oldCfg, JSON.stringify({ fleets: [{ ...fleet, state: legacy }] }));
  const first = await run(["--config", oldCfg, "--json", "fleet", "run", "--now", "2026-03-02T03:30:00Z"], {
    env,
  });
  assert.equal(first.code, 0, show(first));
  assert.equal((await fleetSnapshots("old")).length, 4);
  // The upgrade: no `state` in the config; later in the same window nothing runs again.
  const newCfg = path.join(base, "new.json");
  await fs.writeFile(newCfg, JSON.stringify({ fleets: [fleet] }));
  const again = await run(["--config", newCfg, "--json", "fleet", "run", "--now", "2026-03-02T04:10:00Z"], {
    env,
  });
  assert.equal(again.code, 0, show(again));
  assert.equal((await fleetSnapshots("old")).length, 4, show(again));
  assert.equal(rows(legacy, "SELECT count(*) AS n FROM lifeboat_fleet_runs WHERE fleet = 'old'")[0]!.n, 4);
  const shared = path.join(stateDir, "state.db");
  assert.equal(
    rows(shared, "SELECT count(*) AS n FROM lifeboat_fleet_accounts WHERE fleet = 'old'")[0]!.n,
    0,
  );
  // Named alone, the fleet is found in its own file.
  const st = await run(["--json", "fleet", "status", "--name", "old"], { env });
  assert.equal(jsonLines(st.stdout)[0]?.accounts, 4, show(st));
});

test("fleet run --metrics serves the status figures for Prometheus", async () => {
  const port = await freePort();
  const r = startCli(["--config", cfg, "fleet", "run", "--metrics", `127.0.0.1:${port}`, "--tick", "1"], {
    env,
  });
  let body = "";
  await waitFor(
    async () => {
      try {
        body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return body.includes("lifeboat_fleet_accounts");
      } catch {
        return false;
      }
    },
    30_000,
    200,
  );
  r.child.kill("SIGTERM");
  const out = await r.done;
  assert.equal(out.code, 0, show(out));
  assert.match(body, /lifeboat_fleet_accounts\{fleet="mini",status="protected"\} 4/);
  assert.match(body, /lifeboat_fleet_backlog\{fleet="mini",state="done"\} 4/);
  assert.match(body, /lifeboat_fleet_drilled_fraction_30d\{fleet="mini"\} /);
});
