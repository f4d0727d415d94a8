/**
 * The console's fleet API (docs/api.md "Fleets") through a real `lifeboat ui` process, over a
 * fleet backed up by the real CLI on two simulated nights: figures per fleet, a page of accounts
 * answered by the fleet's store (with bad input: unknown fleet or account, oversized pages, bad
 * sorts), an account's history from its catalogue, the restore of one account as it was at a
 * time (bytes compared), the whole-service restore with its dry run, roles, restore roots and
 * the audit log; and `fleet run --ui`, the console beside a running fleet.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { CLI, removeTempDir, tempDir } from "../support/cli.js";
import { ConsoleClient, type ConsoleServer, startConsole } from "../support/console.js";
import { type FleetFixture, makeFleetFixture } from "../support/fleet-console.js";

let base: string;
let fx: FleetFixture;
let server: ConsoleServer;
let admin: ConsoleClient;
let operator: ConsoleClient;
let viewer: ConsoleClient;

interface AccountRow {
  id: string;
  state: string;
  backlog: string;
  newestGood: string | null;
}

before(async () => {
  base = await tempDir("lifeboat-console-fleet-");
  fx = await makeFleetFixture(base);
  server = await startConsole(fx.env);
  admin = await ConsoleClient.signIn(server.url, "admin", server.token);
  const mk = async (name: string, role: string) => {
    const u = await admin.post<{ token: string }>("/api/users", { name, role });
    assert.equal(u.status, 200, JSON.stringify(u.body));
    return ConsoleClient.signIn(server.url, name, u.body.token);
  };
  operator = await mk("olga", "operator");
  viewer = await mk("vic", "viewer");
});

after(async () => {
  await server?.stop();
  await removeTempDir(base);
});

const same = async (a: string, b: string) =>
  assert.ok((await fs.readFile(a)).equals(await fs.readFile(b)), `${a} = ${b}`);

describe("reads", () => {
  test("without a session every fleet endpoint is 401", async () => {
    const anon = new ConsoleClient(server.url);
    for (const [m, p] of [
      ["GET", "/api/fleets"],
      ["GET", "/api/fleets/mail"],
      ["GET", "/api/fleets/mail/accounts"],
      ["GET", "/api/fleets/mail/accounts/ann"],
      ["GET", "/api/fleets/mail/accounts/ann/history"],
      ["POST", "/api/fleets/mail/restore/preview"],
      ["POST", "/api/fleets/mail/restore"],
    ] as const)
      assert.equal((await anon.request(m, p, m === "GET" ? undefined : {})).status, 401, `${m} ${p}`);
  });

  test("the overview and integrity show the fleet with its states, backlog and drills", async () => {
    const ov = await viewer.get<{
      fleets: {
        name: string;
        accounts: number;
        states: Record<string, number>;
        backlog: Record<string, number>;
      }[];
    }>("/api/overview");
    assert.equal(ov.status, 200);
    const f = ov.body.fleets.find((x) => x.name === "mail")!;
    assert.equal(f.accounts, 6);
    assert.deepEqual(f.states, { protected: 6, late: 0, failing: 0, never: 0 });
    assert.equal(f.backlog.done, 6);
    const integ = await viewer.get<{
      fleets: { fleet: string; proven: number; accounts: number; fraction: number }[];
    }>("/api/integrity");
    const m = integ.body.fleets.find((x) => x.fleet === "mail")!;
    assert.ok(m.proven >= 1 && m.proven <= 6, `the first night drilled a sample: ${m.proven}`);
    assert.equal(m.fraction, Math.round((m.proven / 6) * 10_000) / 10_000);
    // Account snapshots belong to their fleet: they are not sources of their own.
    const src = await viewer.get<{ total: number }>("/api/sources");
    assert.equal(src.body.total, 0);
  });

  test("accounts are paged, searched, filtered and sorted by the server", async () => {
    const p1 = await viewer.get<{ total: number; items: AccountRow[] }>(
      "/api/fleets/mail/accounts?limit=4&sort=id",
    );
    assert.equal(p1.status, 200);
    assert.equal(p1.body.total, 6);
    assert.deepEqual(
      p1.body.items.map((a) => a.id),
      ["ann", "bob", "carla", "dan"],
    );
    const p2 = await viewer.get<{ items: AccountRow[] }>(
      "/api/fleets/mail/accounts?limit=4&offset=4&sort=id",
    );
    assert.deepEqual(
      p2.body.items.map((a) => a.id),
      ["eve", "finn"],
    );
    const desc = await viewer.get<{ items: AccountRow[] }>(
      "/api/fleets/mail/accounts?limit=1&sort=id&order=desc",
    );
    assert.equal(desc.body.items[0]!.id, "finn");
    const search = await viewer.get<{ total: number; items: AccountRow[] }>("/api/fleets/mail/accounts?q=AR");
    assert.deepEqual(
      search.body.items.map((a) => a.id),
      ["carla"],
    );
    const late = await viewer.get<{ total: number }>("/api/fleets/mail/accounts?state=late");
    assert.equal(late.body.total, 0);
    const prot = await viewer.get<{ total: number; items: AccountRow[] }>(
      "/api/fleets/mail/accounts?state=protected",
    );
    assert.equal(prot.body.total, 6);
    assert.ok(prot.body.items.every((a) => a.state === "protected" && a.newestGood !== null));
  });

  test("bad input: unknown fleet or account, oversized or bad pages", async () => {
    const bad: [string, number][] = [
      ["/api/fleets/nope", 404],
      ["/api/fleets/nope/accounts", 404],
      ["/api/fleets/mail/accounts/zed", 404],
      ["/api/fleets/mail/accounts/zed/history", 404],
      ["/api/fleets/mail/accounts?limit=1001", 400],
      ["/api/fleets/mail/accounts?limit=0", 400],
      ["/api/fleets/mail/accounts?offset=-1", 400],
      ["/api/fleets/mail/accounts?sort=size", 400],
      ["/api/fleets/mail/accounts?state=great", 400],
      [`/api/fleets/mail/accounts?q=${"x".repeat(201)}`, 400],
      [`/api/fleets/mail/accounts/${"a".repeat(513)}`, 400],
    ];
    for (const [p, status] of bad) {
      const r = await viewer.get<{ error: { code: string; message: string } }>(p);
      assert.equal(r.status, status, `${p}: ${JSON.stringify(r.body)}`);
      assert.ok(r.body.error.message.length > 0);
    }
    const big = await viewer.get<{ error: { message: string } }>("/api/fleets/mail/accounts?limit=1001");
    assert.match(big.body.error.message, /limit/);
  });

  test("an account's detail and its history from the catalogue, newest first, with deltas", async () => {
    const a = await viewer.get<{ id: string; state: string; repo: string; status: { account: string } }>(
      "/api/fleets/mail/accounts/ann",
    );
    assert.equal(a.status, 200);
    assert.equal(a.body.state, "protected");
    assert.equal(a.body.status.account, "ann");
    const h = await viewer.get<{
      repo: string;
      snapshots: {
        id: string;
        time: string;
        account: string;
        deltaBytes: number | null;
        summary: { files: number };
      }[];
      runs: { outcome: string }[];
    }>("/api/fleets/mail/accounts/ann/history");
    assert.equal(h.status, 200);
    assert.equal(h.body.repo, "main");
    assert.equal(h.body.snapshots.length, 2, "one snapshot per night (ann changed)");
    assert.ok(h.body.snapshots[0]!.time > h.body.snapshots[1]!.time, "newest first");
    assert.equal(h.body.snapshots[0]!.summary.files, 3);
    assert.equal(h.body.snapshots[1]!.deltaBytes, null);
    assert.equal(typeof h.body.snapshots[0]!.deltaBytes, "number");
    assert.ok(h.body.snapshots.every((s) => s.account === "ann"));
    assert.deepEqual(
      h.body.runs.map((r) => r.outcome),
      ["snapshot", "snapshot"],
    );
    const bob = await viewer.get<{ snapshots: unknown[]; runs: { outcome: string }[] }>(
      "/api/fleets/mail/accounts/bob/history",
    );
    assert.equal(bob.body.snapshots.length, 1, "bob did not change: checked, no second snapshot");
    assert.deepEqual(
      bob.body.runs.map((r) => r.outcome),
      ["unchanged", "snapshot"],
    );
  });
});

describe("restoring an account to a time", () => {
  const body = (target: string, at = fx.between.toISOString(), source = "account:mail:ann") => ({
    repo: "main",
    source,
    at,
    target,
  });

  test("the dry run names the snapshot at the time; the restore brings back its bytes", async () => {
    const target = path.join(fx.restores, "ann-then");
    const pre = await operator.post<{
      snapshot: { time: string };
      files: number;
      path: string;
      target: { exists: boolean };
    }>("/api/restore/preview", body(target));
    assert.equal(pre.status, 200, JSON.stringify(pre.body));
    assert.ok(Date.parse(pre.body.snapshot.time) <= fx.between.getTime());
    assert.equal(pre.body.files, 2, "the first night's two files");
    assert.equal(pre.body.path, fx.folder("ann"));
    await assert.rejects(fs.stat(target), "a dry run writes nothing");
    const t = await operator.post<{ id: string }>("/api/restore", body(target));
    assert.equal(t.status, 202, JSON.stringify(t.body));
    const done = await operator.waitTask<{ result: { files: number } }>(t.body.id);
    assert.equal(done.state, "done", JSON.stringify(done));
    assert.equal(await fs.readFile(path.join(target, "Maildir", "cur", "1.eml"), "utf8"), fx.firstAnn);
    await assert.rejects(
      fs.stat(path.join(target, "Maildir", "cur", "2.eml")),
      "the later mail is not in it",
    );
    await same(path.join(target, "photo.bin"), path.join(fx.folder("ann"), "photo.bin"));
    // Now: the newest snapshot, with the second night's mail.
    const now = path.join(fx.restores, "ann-now");
    const t2 = await operator.post<{ id: string }>("/api/restore", body(now, new Date().toISOString()));
    assert.equal((await operator.waitTask(t2.body.id)).state, "done");
    await same(
      path.join(now, "Maildir", "cur", "1.eml"),
      path.join(fx.folder("ann"), "Maildir", "cur", "1.eml"),
    );
    await same(
      path.join(now, "Maildir", "cur", "2.eml"),
      path.join(fx.folder("ann"), "Maildir", "cur", "2.eml"),
    );
  });

  test("refused: a viewer, an unknown fleet or account, a time before the first snapshot, outside the roots", async () => {
    const target = path.join(fx.restores, "refused");
    assert.equal((await viewer.post("/api/restore", body(target))).status, 403);
    assert.equal(
      (await operator.post("/api/restore", body(target, undefined, "account:nope:ann"))).status,
      404,
    );
    assert.equal(
      (await operator.post("/api/restore", body(target, undefined, "account:mail:zed"))).status,
      404,
    );
    assert.equal((await operator.post("/api/restore", body(target, undefined, "account:mail"))).status, 400);
    assert.equal((await operator.post("/api/restore", body(target, "2020-01-01T00:00:00Z"))).status, 404);
    const out = await operator.post<{ error: { code: string } }>(
      "/api/restore",
      body(path.join(base, "elsewhere")),
    );
    assert.equal(out.status, 403);
    assert.equal(out.body.error.code, "PERMISSION_DENIED");
    await assert.rejects(fs.stat(target));
    await assert.rejects(fs.stat(path.join(base, "elsewhere")));
  });
});

describe("whole-service restore", () => {
  test("the dry run lists the accounts in order and writes nothing; the restore brings every account back", async () => {
    const target = path.join(fx.restores, "all");
    const pre = await operator.post<{
      accounts: number;
      into: string;
      first: { account: string; snapshot: string; allowed: boolean }[];
      command: string;
    }>("/api/fleets/mail/restore/preview", { target, parallel: 3 });
    assert.equal(pre.status, 200, JSON.stringify(pre.body));
    assert.equal(pre.body.accounts, 6);
    assert.equal(pre.body.into, "target");
    assert.deepEqual(
      pre.body.first.map((a) => a.account),
      fx.ids,
    );
    assert.ok(pre.body.first.every((a) => a.allowed && /^[0-9a-f]{64}$/.test(a.snapshot)));
    assert.match(
      pre.body.command,
      /^lifeboat fleet restore --all --name mail --parallel 3 --run default --target /,
    );
    await assert.rejects(fs.stat(target), "a dry run writes nothing");
    // In place: these account folders are outside the restore roots, so the dry run says so.
    const inPlace = await operator.post<{ into: string; first: { allowed: boolean }[] }>(
      "/api/fleets/mail/restore/preview",
      {},
    );
    assert.equal(inPlace.body.into, "own-folders");
    assert.ok(inPlace.body.first.every((a) => !a.allowed));

    const t = await operator.post<{ id: string }>("/api/fleets/mail/restore", {
      target,
      parallel: 3,
      run: "api",
    });
    assert.equal(t.status, 202, JSON.stringify(t.body));
    const done = await operator.waitTask<{
      accounts: { done: number; total: number; failed: number };
      result: { restored: number; failed: number };
    }>(t.body.id);
    assert.equal(done.state, "done", JSON.stringify(done));
    assert.deepEqual(done.accounts, { done: 6, total: 6, failed: 0 });
    assert.equal(done.result.restored, 6);
    for (const id of fx.ids) {
      await same(path.join(target, id, "photo.bin"), path.join(fx.folder(id), "photo.bin"));
      await same(
        path.join(target, id, "Maildir", "cur", "1.eml"),
        path.join(fx.folder(id), "Maildir", "cur", "1.eml"),
      );
    }
    // The same run again resumes: everything is back already.
    const again = await operator.post<{ id: string }>("/api/fleets/mail/restore", { target, run: "api" });
    const r2 = await operator.waitTask<{ result: { restored: number; skipped: number } }>(again.body.id);
    assert.equal(r2.result.skipped, 6);
    assert.equal(r2.result.restored, 0);
  });

  test("in place outside the restore roots fails each account and writes nothing there", async () => {
    const before = await fs.readFile(path.join(fx.folder("bob"), "Maildir", "cur", "1.eml"));
    await fs.rm(path.join(fx.folder("bob"), "photo.bin"));
    const t = await operator.post<{ id: string }>("/api/fleets/mail/restore", { run: "in-place" });
    const done = await operator.waitTask<{ result: { failed: number; results: { error: string }[] } }>(
      t.body.id,
    );
    assert.equal(done.result.failed, 6);
    assert.match(done.result.results[0]!.error, /not under a restore root/);
    await assert.rejects(fs.stat(path.join(fx.folder("bob"), "photo.bin")), "nothing restored in place");
    assert.ok(before.equals(await fs.readFile(path.join(fx.folder("bob"), "Maildir", "cur", "1.eml"))));
  });

  test("refused: a viewer, an unknown fleet, bad input, a target outside the roots; all audited", async () => {
    assert.equal((await viewer.post("/api/fleets/mail/restore/preview", {})).status, 403);
    assert.equal((await viewer.post("/api/fleets/mail/restore", {})).status, 403);
    assert.equal((await operator.post("/api/fleets/nope/restore", {})).status, 404);
    assert.equal((await operator.post("/api/fleets/mail/restore", { parallel: 0 })).status, 400);
    assert.equal((await operator.post("/api/fleets/mail/restore", { parallel: 65 })).status, 400);
    assert.equal((await operator.post("/api/fleets/mail/restore", { run: "../x" })).status, 400);
    assert.equal((await operator.post("/api/fleets/mail/restore", { at: "yesterday" })).status, 400);
    assert.equal((await operator.post("/api/fleets/mail/restore", { bogus: 1 })).status, 400);
    const out = await operator.post("/api/fleets/mail/restore", { target: path.join(base, "elsewhere") });
    assert.equal(out.status, 403);
    const audit = await admin.get<{ entries: { action: string; outcome: string; user: string }[] }>(
      "/api/audit?limit=200",
    );
    const mine = audit.body.entries.filter((e) => e.action === "restore-all");
    assert.ok(mine.some((e) => e.outcome === "started" && e.user === "olga"));
    assert.ok(mine.some((e) => e.outcome === "ok"));
    assert.ok(mine.some((e) => e.outcome === "refused"));
    assert.ok(mine.some((e) => e.outcome === "failed"));
  });
});

test("fleet run --ui serves the console beside the running fleet, from its open state", async () => {
  const env = { ...fx.env, XDG_STATE_HOME: path.join(base, "state-ui") };
  const child = spawn(
    process.execPath,
    [CLI, "--json", "fleet", "run", "--ui", "127.0.0.1:0", "--tick", "1"],
    {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  try {
    const { url, token } = await new Promise<{ url: string; token: string }>((resolve, reject) => {
      let token = "";
      const timer = setTimeout(() => reject(new Error(`no console:\n${out}\n${err}`)), 60_000);
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        for (const line of out.split("\n").filter((l) => l.startsWith("{"))) {
          const m = JSON.parse(line) as { message_type: string; url?: string; token?: string };
          if (m.message_type === "console_user" && m.token) token = m.token;
          if (m.message_type === "listening" && m.url) {
            clearTimeout(timer);
            resolve({ url: m.url.replace(/\/$/, ""), token });
          }
        }
      });
      child.on("exit", (code) => reject(new Error(`fleet run exited ${code}:\n${out}\n${err}`)));
    });
    const c = await ConsoleClient.signIn(url, "admin", token);
    const f = await c.get<{ accounts: number; states: Record<string, number> }>("/api/fleets/mail");
    assert.equal(f.status, 200);
    assert.equal(f.body.accounts, 6);
    const page = await c.get<{ total: number }>("/api/fleets/mail/accounts?q=ann");
    assert.equal(page.body.total, 1);
  } finally {
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  }
  assert.equal(child.exitCode, 0, err);
});
