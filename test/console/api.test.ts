/**
 * The console's JSON API (docs/api.md) through a real `lifeboat ui` process and a real
 * repository: every endpoint without a session (401), sign-in, CSRF, roles, and each endpoint
 * with good and bad input (unknown ids, path traversal, oversized pages), restores only under
 * the restore roots, downloads compared byte for byte, and the audit log.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import https from "node:https";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { readState } from "../../src/app/jobs.js";
import { ensurePackages } from "../support/apt.js";
import { baseEnv, runOk, tempDir, writeRandomFile } from "../support/cli.js";
import { ConsoleClient, type ConsoleServer, startConsole } from "../support/console.js";

let base: string;
let env: Record<string, string>;
let server: ConsoleServer;
let admin: ConsoleClient;
let operator: ConsoleClient;
let viewer: ConsoleClient;
let seriesSnap: string;
const roots = () => path.join(base, "restores");

interface SourceRow {
  id: string;
  name: string;
  state: string;
  repo: string;
  newest: { id: string } | null;
  flagged: number;
}

async function sources(c: ConsoleClient): Promise<SourceRow[]> {
  const r = await c.get<{ items: SourceRow[] }>("/api/sources?limit=1000");
  assert.equal(r.status, 200);
  return r.body.items;
}

before(async () => {
  ensurePackages({ "/usr/bin/unzip": "unzip", "/usr/bin/openssl": "openssl" });
  base = await tempDir("lifeboat-console-api-");
  const src = path.join(base, "src");
  await fs.mkdir(path.join(src, "docs", "deep"), { recursive: true });
  await fs.writeFile(path.join(src, "docs", "a.txt"), "alpha\n".repeat(100));
  await fs.writeFile(path.join(src, "docs", "deep", "b.txt"), "beta\n");
  await fs.writeFile(path.join(src, "docs", "ünïcode name.txt"), "unicode\n");
  await fs.symlink("a.txt", path.join(src, "docs", "link"));
  await writeRandomFile(path.join(src, "docs", "data.bin"), 0.3, 7);
  await fs.mkdir(path.join(src, "many"));
  for (let i = 0; i < 1200; i++)
    await fs.writeFile(path.join(src, "many", `f${String(i).padStart(5, "0")}`), "x".repeat(i % 50));
  await fs.mkdir(path.join(src, "wipe"));
  for (let i = 0; i < 20; i++)
    await fs.writeFile(path.join(src, "wipe", `w${i}.txt`), `file ${i}\n`.repeat(50));
  await fs.mkdir(roots());
  const db = new Database(path.join(base, "notes.db"));
  db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)");
  const ins = db.prepare("INSERT INTO notes (body) VALUES (?)");
  for (let i = 0; i < 300; i++) ins.run(`note ${i}`);
  db.close();
  const config = path.join(base, "config.json");
  await fs.writeFile(
    config,
    JSON.stringify({
      jobs: [
        { name: "docs", backup: path.join(src, "docs"), every: "1h", keep: { last: 5 } },
        { name: "wipe", backup: path.join(src, "wipe"), every: "1d" },
        { name: "mail", pull: "imaps://me@127.0.0.1:1", every: "1d" },
        { name: "notes", backup: `sqlite:${path.join(base, "notes.db")}`, every: "1h" },
      ],
      console: { restoreRoots: [roots()] },
    }),
  );
  env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(base, "repo"),
    LIFEBOAT_PASSWORD: "pw",
    LIFEBOAT_CONFIG: config,
    XDG_STATE_HOME: path.join(base, "state"),
  });
  await runOk(["init"], { env });
  await runOk(["backup", src], { env });
  await fs.writeFile(path.join(src, "docs", "a.txt"), "alpha changed\n");
  const r = await runOk(["--json", "backup", src], { env });
  seriesSnap = JSON.parse(r.stdout.trim().split("\n").at(-1)!).snapshot_id;
  server = await startConsole(env);
  assert.ok(server.token.length >= 20, "the first start prints an admin token");
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
  await fs.rm(base, { recursive: true, force: true });
});

const ZERO = "0".repeat(64);

describe("without a session", () => {
  const endpoints: [string, string][] = [
    ["GET", "/api/session"],
    ["POST", "/api/logout"],
    ["GET", "/api/overview"],
    ["GET", "/api/sources"],
    ["GET", "/api/sources/job:docs"],
    ["GET", "/api/sources/job:docs/history"],
    ["GET", "/api/repositories"],
    ["GET", "/api/repos/main/snapshots"],
    ["GET", `/api/repos/main/snapshots/${ZERO}`],
    ["GET", `/api/repos/main/snapshots/${ZERO}/tree`],
    ["GET", `/api/repos/main/snapshots/${ZERO}/file?path=/a`],
    ["GET", `/api/repos/main/snapshots/${ZERO}/archive`],
    ["POST", `/api/repos/main/snapshots/${ZERO}/ack`],
    ["GET", "/api/repos/main/find?pattern=a"],
    ["GET", `/api/repos/main/diff?a=${ZERO}&b=${ZERO}`],
    ["GET", "/api/flags"],
    ["GET", "/api/integrity"],
    ["GET", "/api/policies"],
    ["POST", "/api/policies/simulate"],
    ["POST", "/api/policies/apply"],
    ["GET", "/api/activity"],
    ["GET", "/api/audit"],
    ["GET", "/api/tasks"],
    ["GET", "/api/tasks/x"],
    ["GET", "/api/tasks/x/events"],
    ["POST", "/api/tasks/x/cancel"],
    ["GET", "/api/restore/roots"],
    ["POST", "/api/restore/preview"],
    ["POST", "/api/restore"],
    ["POST", "/api/jobs/docs/run"],
    ["POST", "/api/drills"],
    ["POST", "/api/checks"],
    ["GET", "/api/users"],
    ["POST", "/api/users"],
    ["DELETE", "/api/users/vic"],
    ["GET", "/api/no-such-endpoint"],
  ];
  test("every API request is answered 401", async () => {
    const anon = new ConsoleClient(server.url);
    for (const [method, p] of endpoints) {
      const r = await anon.request(method, p, method === "GET" ? undefined : {});
      assert.equal(r.status, 401, `${method} ${p}`);
    }
    // A forged or stale cookie is no session either.
    anon.cookie = "lifeboat_console=forged";
    assert.equal((await anon.get("/api/overview")).status, 401);
  });

  test("the page itself loads (it shows the sign-in form), with a strict CSP", async () => {
    const r = await fetch(`${server.url}/`);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /<div id="app">/);
    assert.match(r.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    assert.equal(r.headers.get("x-frame-options"), "DENY");
  });
});

describe("sign-in, sessions and CSRF", () => {
  test("a wrong token is refused; the right one sets an HttpOnly SameSite cookie", async () => {
    const c = new ConsoleClient(server.url);
    assert.equal((await c.login("admin", "wrong")).status, 401);
    assert.equal((await c.login("nobody", "wrong")).status, 401);
    const r = await c.login("admin", server.token);
    assert.equal(r.status, 200);
    const cookie = r.headers.get("set-cookie") ?? "";
    assert.match(cookie, /HttpOnly/i);
    assert.match(cookie, /SameSite=Strict/i);
    assert.equal(r.body.role, "admin");
    const me = await c.get<{ user: string; csrf: string }>("/api/session");
    assert.equal(me.body.user, "admin");
    assert.equal(me.body.csrf, c.csrf);
    assert.equal((await c.post("/api/logout")).status, 200);
    assert.equal((await c.get("/api/session")).status, 401);
  });

  test("a sign-in from another site or not as JSON is refused", async () => {
    const c = new ConsoleClient(server.url);
    const r = await c.post(
      "/api/login",
      { user: "admin", token: server.token },
      { origin: "https://evil.example" },
    );
    assert.equal(r.status, 403);
    const form = await fetch(`${server.url}/api/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `user=admin&token=${server.token}`,
    });
    assert.equal(form.status, 415);
  });

  test("a state-changing request without the CSRF token, or with a wrong one, or cross-site, is refused", async () => {
    const body = { repo: "main", snapshot: seriesSnap, path: "/", target: path.join(roots(), "csrf") };
    const no = await operator.post<{ error: { code: string } }>("/api/restore", body, { csrf: false });
    assert.equal(no.status, 403);
    assert.equal(no.body.error.code, "CSRF");
    const saved = operator.csrf;
    operator.csrf = "wrong";
    assert.equal((await operator.post("/api/restore", body)).status, 403);
    operator.csrf = saved;
    assert.equal((await operator.post("/api/restore", body, { origin: "https://evil.example" })).status, 403);
    await assert.rejects(fs.stat(path.join(roots(), "csrf")), "nothing was restored");
  });
});

describe("roles", () => {
  test("a viewer reads and downloads but cannot restore, run, drill, check, ack, or change retention", async () => {
    assert.equal((await viewer.get("/api/overview")).status, 200);
    const body = { repo: "main", snapshot: seriesSnap, path: "/", target: path.join(roots(), "viewer") };
    for (const [p, b] of [
      ["/api/restore", body],
      ["/api/restore/preview", body],
      ["/api/jobs/docs/run", undefined],
      ["/api/drills", { repo: "main", snapshot: seriesSnap }],
      ["/api/checks", { repo: "main" }],
      [`/api/repos/main/snapshots/${seriesSnap}/ack`, {}],
      ["/api/policies/apply", { repo: "main", policy: { last: 1 } }],
      ["/api/users", { name: "x", role: "admin" }],
    ] as [string, unknown][]) {
      const r = await viewer.post(p, b);
      assert.equal(r.status, 403, p);
    }
    assert.equal((await viewer.get("/api/audit")).status, 403);
    assert.equal((await viewer.get("/api/users")).status, 403);
    await assert.rejects(fs.stat(path.join(roots(), "viewer")));
  });

  test("an operator cannot change retention, users or read the audit log", async () => {
    assert.equal(
      (await operator.post("/api/policies/apply", { repo: "main", policy: { last: 1 } })).status,
      403,
    );
    assert.equal((await operator.get("/api/audit")).status, 403);
    assert.equal((await operator.request("DELETE", "/api/users/vic")).status, 403);
  });
});

describe("reads", () => {
  test("overview: repositories with sizes and a size history; states counted", async () => {
    const r = await viewer.get<{
      states: Record<string, number>;
      repositories: {
        id: string;
        snapshots: number;
        packBytes: number;
        sizeHistory: unknown[];
        error: string | null;
      }[];
    }>("/api/overview");
    assert.equal(r.status, 200);
    const main = r.body.repositories.find((x) => x.id === "main")!;
    assert.equal(main.error, null);
    assert.ok(main.snapshots >= 2);
    assert.ok(main.packBytes > 0);
    assert.ok(main.sizeHistory.length >= 2);
    assert.ok((r.body.states.never ?? 0) >= 1, "jobs never run are counted as never");
  });

  test("sources: jobs never run are `never`, the backed-up series is `protected`; paging, search, sorting", async () => {
    const all = await sources(viewer);
    assert.equal(all.find((s) => s.name === "docs")?.state, "never");
    const series = all.find((s) => s.name.endsWith(path.join(base, "src")))!;
    assert.equal(series.state, "protected");
    const page = await viewer.get<{ total: number; items: SourceRow[] }>(
      "/api/sources?limit=1&offset=1&sort=name",
    );
    assert.equal(page.body.total, all.length);
    assert.equal(page.body.items.length, 1);
    const q = await viewer.get<{ total: number; items: SourceRow[] }>("/api/sources?q=wipe");
    assert.deepEqual(
      q.body.items.map((s) => s.name),
      ["wipe"],
    );
    assert.equal((await viewer.get("/api/sources?limit=100000")).status, 400, "oversized page");
    assert.equal((await viewer.get("/api/sources?sort=evil")).status, 400);
    assert.equal((await viewer.get("/api/sources/nope")).status, 404);
  });

  test("snapshots in the shape of `snapshots --json`; one snapshot; unknown ids", async () => {
    const r =
      await viewer.get<{ id: string; short_id: string; flagged: boolean; acknowledged: boolean }[]>(
        "/api/repos/main/snapshots",
      );
    assert.equal(r.status, 200);
    const s = r.body.find((x) => x.id === seriesSnap)!;
    assert.equal(s.short_id, seriesSnap.slice(0, 8));
    assert.equal(s.flagged, false);
    assert.equal((await viewer.get(`/api/repos/main/snapshots/${seriesSnap}`)).status, 200);
    assert.equal((await viewer.get(`/api/repos/main/snapshots/${ZERO}`)).status, 404);
    assert.equal((await viewer.get("/api/repos/main/snapshots/../../etc")).status, 404);
    assert.equal((await viewer.get(`/api/repos/nope/snapshots/${seriesSnap}`)).status, 404);
    assert.equal((await viewer.get("/api/repos/main/snapshots/latest")).status, 404);
  });

  test("history of a source: its snapshots newest first with deltas", async () => {
    const id = (await sources(viewer)).find((s) => s.name.endsWith(path.join(base, "src")))!.id;
    const r = await viewer.get<{ snapshots: { id: string; deltaBytes: number | null }[] }>(
      `/api/sources/${encodeURIComponent(id)}/history`,
    );
    assert.equal(r.status, 200);
    assert.equal(r.body.snapshots[0]!.id, seriesSnap);
    assert.equal(r.body.snapshots.at(-1)!.deltaBytes, null);
    assert.equal(typeof r.body.snapshots[0]!.deltaBytes, "number");
  });
});

describe("browse and download", () => {
  const tree = (p: string, extra = "") =>
    viewer.get<{
      path: string;
      total: number;
      offset: number;
      entries: { name: string; type: string; size: number }[];
    }>(`/api/repos/main/snapshots/${seriesSnap}/tree?path=${encodeURIComponent(p)}${extra}`);
  const srcPath = () => path.join(base, "src");

  test("a folder page by page, sorted and filtered", async () => {
    const many = `${srcPath()}/many`;
    const first = await tree(many, "&limit=500");
    assert.equal(first.status, 200);
    assert.equal(first.body.total, 1200);
    assert.equal(first.body.entries.length, 500);
    assert.equal(first.body.entries[0]!.name, "f00000");
    const last = await tree(many, "&offset=1000&limit=500");
    assert.equal(last.body.entries.length, 200);
    assert.equal(last.body.entries.at(-1)!.name, "f01199");
    const bySize = await tree(many, "&sort=size&order=desc&limit=3");
    assert.deepEqual(
      bySize.body.entries.map((e) => e.size),
      [49, 49, 49],
    );
    const filtered = await tree(many, "&q=F0119");
    assert.equal(filtered.body.total, 10);
    const docs = await tree(`${srcPath()}/docs`);
    assert.deepEqual(
      docs.body.entries.map((e) => `${e.name}:${e.type}`),
      ["a.txt:file", "data.bin:file", "deep:dir", "link:symlink", "ünïcode name.txt:file"],
    );
  });

  test("bad input: oversized pages, traversal, files as folders, missing paths", async () => {
    assert.equal((await tree("/", "&limit=5001")).status, 400);
    assert.equal((await tree("/", "&offset=-1")).status, 400);
    assert.equal((await tree("/../../etc")).status, 400);
    assert.equal((await tree(`${srcPath()}/docs/../../..`)).status, 400);
    assert.equal((await tree(`${srcPath()}/docs/a.txt`)).status, 404);
    assert.equal((await tree(`${srcPath()}/nope`)).status, 404);
    assert.equal((await viewer.get(`/api/repos/main/snapshots/${ZERO}/tree?path=/`)).status, 404);
  });

  test("a file downloads byte for byte (audited); traversal and folders are refused", async () => {
    const want = await fs.readFile(path.join(srcPath(), "docs", "data.bin"));
    const file = (p: string) =>
      viewer.get(`/api/repos/main/snapshots/${seriesSnap}/file?path=${encodeURIComponent(p)}`);
    const r = await file(`${srcPath()}/docs/data.bin`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "application/octet-stream");
    assert.match(r.headers.get("content-disposition") ?? "", /attachment; filename="data.bin"/);
    assert.ok(r.raw.equals(want), "downloaded bytes equal the backed-up file");
    const uni = await file(`${srcPath()}/docs/ünïcode name.txt`);
    assert.equal(uni.raw.toString(), "unicode\n");
    assert.match(
      uni.headers.get("content-disposition") ?? "",
      /filename\*=UTF-8''%C3%BCn%C3%AFcode%20name\.txt/,
    );
    assert.equal((await file(`${srcPath()}/docs/../../../etc/passwd`)).status, 400);
    assert.equal((await file("/etc/passwd")).status, 404);
    assert.equal((await file(`${srcPath()}/docs`)).status, 400);
    assert.equal((await file(`${srcPath()}/docs/link`)).status, 400);
    assert.equal((await viewer.get(`/api/repos/main/snapshots/${seriesSnap}/file`)).status, 400);
  });

  test("preview: text as JSON, binary said so, never served as a page", async () => {
    const pv = (p: string) =>
      viewer.get<{ text: string | null; binary: boolean; truncated: boolean }>(
        `/api/repos/main/snapshots/${seriesSnap}/file?preview=1&path=${encodeURIComponent(p)}`,
      );
    const t = await pv(`${srcPath()}/docs/a.txt`);
    assert.equal(t.body.text, "alpha changed\n");
    assert.equal(t.body.truncated, false);
    assert.equal((await pv(`${srcPath()}/docs/data.bin`)).body.binary, true);
  });

  test("a folder as tar and as zip holds the same files", async () => {
    const out = path.join(base, "archives");
    await fs.mkdir(path.join(out, "tar"), { recursive: true });
    await fs.mkdir(path.join(out, "zip"), { recursive: true });
    const tarR = await viewer.get(
      `/api/repos/main/snapshots/${seriesSnap}/archive?format=tar&path=${encodeURIComponent(`${srcPath()}/docs`)}`,
    );
    assert.equal(tarR.status, 200);
    await fs.writeFile(path.join(out, "d.tar"), tarR.raw);
    execFileSync("tar", ["-xf", path.join(out, "d.tar"), "-C", path.join(out, "tar")]);
    const zipR = await viewer.get(
      `/api/repos/main/snapshots/${seriesSnap}/archive?format=zip&path=${encodeURIComponent(`${srcPath()}/docs`)}`,
    );
    assert.equal(zipR.status, 200);
    assert.match(zipR.headers.get("content-disposition") ?? "", /docs\.zip/);
    await fs.writeFile(path.join(out, "d.zip"), zipR.raw);
    execFileSync("unzip", ["-q", path.join(out, "d.zip"), "-d", path.join(out, "zip")]);
    for (const f of ["a.txt", "deep/b.txt", "data.bin", "ünïcode name.txt"]) {
      const want = await fs.readFile(path.join(srcPath(), "docs", f));
      assert.ok((await fs.readFile(path.join(out, "tar", "docs", f))).equals(want), `tar ${f}`);
      assert.ok((await fs.readFile(path.join(out, "zip", "docs", f))).equals(want), `zip ${f}`);
    }
    assert.equal(await fs.readlink(path.join(out, "zip", "docs", "link")), "a.txt");
    assert.equal(
      (await viewer.get(`/api/repos/main/snapshots/${seriesSnap}/archive?format=rar`)).status,
      400,
    );
    assert.equal(
      (
        await viewer.get(
          `/api/repos/main/snapshots/${seriesSnap}/archive?path=${encodeURIComponent(`${srcPath()}/docs/a.txt`)}`,
        )
      ).status,
      400,
    );
  });

  test("search by name across snapshots; diff between two", async () => {
    const f = await viewer.get<{ matches: { path: string; snapshot: string }[] }>(
      "/api/repos/main/find?pattern=b.txt",
    );
    assert.equal(f.status, 200);
    assert.equal(f.body.matches.length, 2, "once per snapshot");
    assert.ok(f.body.matches.every((m) => m.path.endsWith("/docs/deep/b.txt")));
    assert.equal((await viewer.get("/api/repos/main/find")).status, 400);
    const snaps = (await viewer.get<{ id: string }[]>("/api/repos/main/snapshots")).body;
    const d = await viewer.get<{
      summary: { modified: number };
      changes: { path: string; modifier: string }[];
    }>(`/api/repos/main/diff?a=${snaps[0]!.id}&b=${seriesSnap}`);
    assert.equal(d.status, 200);
    assert.ok(d.body.changes.some((c) => c.path.endsWith("/docs/a.txt") && c.modifier === "M"));
    assert.equal((await viewer.get(`/api/repos/main/diff?a=${ZERO}&b=${seriesSnap}`)).status, 404);
    assert.equal((await viewer.get("/api/repos/main/diff?a=x&b=y")).status, 400);
  });
});

describe("actions", () => {
  test("restore: only under the restore roots (refusals audited); a folder restores and matches", async () => {
    const folder = `${path.join(base, "src")}/docs`;
    const outside = await operator.post<{ error: { code: string } }>("/api/restore", {
      repo: "main",
      snapshot: seriesSnap,
      path: folder,
      target: path.join(base, "elsewhere"),
    });
    assert.equal(outside.status, 403);
    assert.equal(outside.body.error.code, "PERMISSION_DENIED");
    // A symlink inside a root that points outside does not lead out.
    await fs.symlink(base, path.join(roots(), "escape"));
    assert.equal(
      (
        await operator.post("/api/restore", {
          repo: "main",
          snapshot: seriesSnap,
          path: folder,
          target: path.join(roots(), "escape", "x"),
        })
      ).status,
      403,
    );
    assert.equal(
      (
        await operator.post("/api/restore", {
          repo: "main",
          snapshot: seriesSnap,
          path: folder,
          target: "relative/x",
        })
      ).status,
      400,
    );
    await assert.rejects(fs.stat(path.join(base, "elsewhere")));
    const target = path.join(roots(), "docs-now");
    const pv = await operator.post<{ files: number; target: { exists: boolean } }>("/api/restore/preview", {
      repo: "main",
      snapshot: seriesSnap,
      path: folder,
      target,
    });
    assert.equal(pv.status, 200);
    assert.equal(pv.body.files, 4);
    assert.equal(pv.body.target.exists, false);
    const t = await operator.post<{ id: string }>("/api/restore", {
      repo: "main",
      snapshot: seriesSnap,
      path: folder,
      target,
    });
    assert.equal(t.status, 202);
    const done = await operator.waitTask<{ result: { files: number } }>(t.body.id);
    assert.equal(done.state, "done", JSON.stringify(done));
    assert.equal(done.result.files, 4);
    assert.equal(await fs.readFile(path.join(target, "a.txt"), "utf8"), "alpha changed\n");
    assert.equal(await fs.readFile(path.join(target, "deep", "b.txt"), "utf8"), "beta\n");
  });

  test("restore to a time takes the newest snapshot at or before it; bad requests are 400/404", async () => {
    const id = (await sources(operator)).find((s) => s.name.endsWith(path.join(base, "src")))!.id;
    const snaps = (await operator.get<{ id: string; time: string }[]>("/api/repos/main/snapshots")).body;
    const first = snaps[0]!;
    const target = path.join(roots(), "docs-then");
    const t = await operator.post<{ id: string }>("/api/restore", {
      repo: "main",
      source: id,
      at: new Date(Date.parse(snaps[1]!.time) - 1).toISOString(),
      path: `${path.join(base, "src")}/docs/a.txt`,
      target,
    });
    assert.equal(t.status, 202, JSON.stringify(t.body));
    assert.equal((await operator.waitTask(t.body.id)).state, "done");
    assert.equal(await fs.readFile(path.join(target, "a.txt"), "utf8"), "alpha\n".repeat(100));
    const early = await operator.post("/api/restore", {
      repo: "main",
      source: id,
      at: new Date(Date.parse(first.time) - 60_000).toISOString(),
      path: "/",
      target,
    });
    assert.equal(early.status, 404);
    assert.equal(
      (await operator.post("/api/restore", { repo: "main", snapshot: ZERO, path: "/", target })).status,
      404,
    );
    assert.equal((await operator.post("/api/restore", { repo: "main", path: "/", target })).status, 400);
    assert.equal(
      (
        await operator.post("/api/restore", {
          repo: "main",
          snapshot: seriesSnap,
          path: "/",
          target,
          extra: 1,
        })
      ).status,
      400,
    );
    const bad = await fetch(`${server.url}/api/restore`, {
      method: "POST",
      headers: { cookie: operator.cookie, "x-csrf-token": operator.csrf, "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(bad.status, 400);
  });

  test("run now: a job goes from never to protected; a pull job is refused", async () => {
    assert.equal((await sources(operator)).find((s) => s.name === "docs")!.state, "never");
    const t = await operator.post<{ id: string }>("/api/jobs/docs/run");
    assert.equal(t.status, 202);
    const done = await operator.waitTask<{ result: { snapshotId: string; exitCode: number } }>(t.body.id);
    assert.equal(done.state, "done", JSON.stringify(done));
    assert.equal(done.result.exitCode, 0);
    const row = (await sources(operator)).find((s) => s.name === "docs")!;
    assert.equal(row.state, "protected");
    assert.equal(row.newest?.id, done.result.snapshotId);
    const snap = await operator.get<{ tags: string[] }>(
      `/api/repos/main/snapshots/${done.result.snapshotId}`,
    );
    assert.ok(snap.body.tags.includes("job:docs"));
    const state = await readState(path.join(base, "state", "lifeboat", "state.db"));
    assert.equal(state.docs?.lastExitCode, 0, "the run is in the same state store as `lifeboat run`");
    assert.equal((await operator.post("/api/jobs/mail/run")).status, 400);
    assert.equal((await operator.post("/api/jobs/nope/run")).status, 404);
  });

  test("run now of a database job, restored into a database file under a root", async () => {
    const t = await operator.post<{ id: string }>("/api/jobs/notes/run");
    const done = await operator.waitTask<{ result: { snapshotId: string; exitCode: number } }>(t.body.id);
    assert.equal(done.state, "done", JSON.stringify(done));
    const snap = await operator.get<{ source: string }>(
      `/api/repos/main/snapshots/${done.result.snapshotId}`,
    );
    assert.equal(snap.body.source, "sqlite");
    const target = path.join(roots(), "notes-restored.db");
    const pv = await operator.post<{ kind: string }>("/api/restore/preview", {
      repo: "main",
      snapshot: done.result.snapshotId,
      path: "/",
      target,
    });
    assert.equal(pv.body.kind, "sqlite");
    const r = await operator.post<{ id: string }>("/api/restore", {
      repo: "main",
      snapshot: done.result.snapshotId,
      path: "/",
      target,
    });
    assert.equal((await operator.waitTask(r.body.id)).state, "done");
    const back = new Database(target, { readonly: true });
    assert.equal((back.prepare("SELECT count(*) AS n FROM notes").get() as { n: number }).n, 300);
    back.close();
  });

  test("backups run one at a time: a second run waits, says why, and can be cancelled", async () => {
    const first = await operator.post<{ id: string }>("/api/jobs/docs/run");
    const second = await operator.post<{ id: string; state: string; waiting: string | null }>(
      "/api/jobs/docs/run",
    );
    assert.equal(second.body.state, "queued");
    assert.match(second.body.waiting ?? "", /waiting for backup job docs/);
    const c = await operator.post<{ state: string }>(`/api/tasks/${second.body.id}/cancel`);
    assert.equal(c.status, 200);
    assert.equal(c.body.state, "cancelled");
    assert.equal((await operator.waitTask(first.body.id)).state, "done");
    assert.equal((await operator.waitTask(second.body.id)).state, "cancelled");
  });

  test("a wiped backup is flagged, the source fails, and an operator acknowledges it", async () => {
    const wipe = path.join(base, "src", "wipe");
    const t1 = await operator.post<{ id: string }>("/api/jobs/wipe/run");
    assert.equal((await operator.waitTask(t1.body.id)).state, "done");
    for (let i = 1; i < 20; i++) await fs.rm(path.join(wipe, `w${i}.txt`));
    const t2 = await operator.post<{ id: string }>("/api/jobs/wipe/run");
    const done = await operator.waitTask<{
      result: { exitCode: number; snapshotId: string; anomalies: string[] };
    }>(t2.body.id);
    assert.equal(done.result.exitCode, 4);
    assert.ok(done.result.anomalies.length > 0);
    const row = (await sources(operator)).find((s) => s.name === "wipe")!;
    assert.equal(row.state, "failing");
    assert.equal(row.flagged, 1);
    const flags = await viewer.get<{ flagged: { id: string; acknowledged: boolean }[] }>("/api/flags");
    assert.ok(flags.body.flagged.some((f) => f.id === done.result.snapshotId && !f.acknowledged));
    assert.equal(
      (await viewer.post(`/api/repos/main/snapshots/${done.result.snapshotId}/ack`, {})).status,
      403,
    );
    const ack = await operator.post<{ command: string }>(
      `/api/repos/main/snapshots/${done.result.snapshotId}/ack`,
      {
        note: "planned cleanup",
      },
    );
    assert.equal(ack.status, 200);
    assert.match(ack.body.command, /^lifeboat ack [0-9a-f]{8}$/);
    assert.equal((await sources(operator)).find((s) => s.name === "wipe")!.state, "protected");
    assert.equal((await operator.post(`/api/repos/main/snapshots/${ZERO}/ack`, {})).status, 404);
  });

  test("a drill proves the source restorable; a check is recorded; progress arrives as events", async () => {
    const row = (await sources(operator)).find((s) => s.name === "docs")!;
    const t = await operator.post<{ id: string }>("/api/drills", { repo: "main", source: row.id });
    assert.equal(t.status, 202);
    // Follow it as the page does: server-sent events until it ends.
    const res = await fetch(`${server.url}/api/tasks/${t.body.id}/events`, {
      headers: { cookie: operator.cookie },
    });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const text = await res.text();
    const events = text
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)) as { state: string });
    assert.ok(events.length >= 1);
    assert.equal(events.at(-1)!.state, "done", text);
    const integ = await viewer.get<{
      sources: { id: string; provenLast30Days: boolean }[];
      proven30Days: { proven: number; of: number };
    }>("/api/integrity");
    assert.equal(integ.body.sources.find((s) => s.id === row.id)!.provenLast30Days, true);
    assert.ok(integ.body.proven30Days.proven >= 1);
    const c = await operator.post<{ id: string }>("/api/checks", { repo: "main", readData: "50%" });
    const cd = await operator.waitTask<{ result: { ok: boolean } }>(c.body.id);
    assert.equal(cd.state, "done");
    assert.equal(cd.result.ok, true);
    const integ2 = await viewer.get<{ checks: { repo: string; last: { ok: boolean } | null }[] }>(
      "/api/integrity",
    );
    assert.equal(integ2.body.checks.find((x) => x.repo === "main")!.last?.ok, true);
    assert.equal((await operator.post("/api/checks", { repo: "main", readData: "200%" })).status, 400);
    assert.equal((await operator.post("/api/drills", { repo: "main" })).status, 400);
    assert.equal((await operator.post("/api/drills", { repo: "nope", snapshot: seriesSnap })).status, 404);
  });

  test("tasks and activity: finished tasks listed, unknown ones 404, cancel of a finished one refused", async () => {
    const a = await viewer.get<{
      tasks: { id: string; state: string }[];
      backlog: { job: string; status: string }[];
    }>("/api/activity");
    assert.ok(a.body.tasks.length >= 3);
    assert.deepEqual(a.body.backlog.map((b) => b.job).sort(), ["docs", "mail", "notes", "wipe"]);
    assert.equal(a.body.backlog.find((b) => b.job === "docs")!.status, "scheduled");
    assert.equal((await viewer.get("/api/tasks/nope")).status, 404);
    assert.equal((await viewer.get("/api/tasks/nope/events")).status, 404);
    assert.equal((await operator.post(`/api/tasks/${a.body.tasks[0]!.id}/cancel`)).status, 400);
    assert.equal((await operator.post("/api/tasks/nope/cancel")).status, 404);
  });

  test("policies: schedules, a simulation with the CLI command, and apply for admins only", async () => {
    const p = await viewer.get<{ jobs: { name: string; forgetCommand: string | null }[] }>("/api/policies");
    assert.match(
      p.body.jobs.find((j) => j.name === "docs")!.forgetCommand!,
      /forget --keep-last 5 --tag job:docs/,
    );
    const sim = await viewer.post<{
      kept: number;
      removed: number;
      command: string;
      groups: { decisions: { keep: boolean; reasons: string[] }[] }[];
    }>("/api/policies/simulate", { repo: "main", job: "wipe", policy: { last: 1 } });
    assert.equal(sim.status, 200);
    assert.equal(sim.body.command, "lifeboat forget --keep-last 1 --tag job:wipe --dry-run");
    assert.equal(sim.body.kept + sim.body.removed, 2);
    assert.equal((await viewer.post("/api/policies/simulate", { repo: "main", policy: {} })).status, 400);
    assert.equal(
      (await viewer.post("/api/policies/simulate", { repo: "main", policy: { within: "soon" } })).status,
      400,
    );
    const before = (await admin.get<unknown[]>("/api/repos/main/snapshots")).body.length;
    const ap = await admin.post<{ removed: string[] }>("/api/policies/apply", {
      repo: "main",
      job: "docs",
      policy: { last: 1 },
    });
    assert.equal(ap.status, 200);
    assert.equal(
      (await admin.get<unknown[]>("/api/repos/main/snapshots")).body.length,
      before - ap.body.removed.length,
    );
  });

  test("the audit log holds every restore (and refusal), download, run, drill, ack and retention change", async () => {
    const r = await admin.get<{ entries: { user: string; action: string; outcome: string }[] }>(
      "/api/audit?limit=1000",
    );
    assert.equal(r.status, 200);
    const has = (user: string, action: string, outcome: string) =>
      r.body.entries.some((e) => e.user === user && e.action === action && e.outcome === outcome);
    assert.ok(has("olga", "restore", "refused"));
    assert.ok(has("olga", "restore", "ok"));
    assert.ok(has("vic", "download", "started"));
    assert.ok(has("olga", "backup", "ok"));
    assert.ok(has("olga", "drill", "ok"));
    assert.ok(has("olga", "ack", "ok"));
    assert.ok(has("admin", "forget", "ok"));
    assert.ok(has("admin", "sign-in", "refused"));
    const file = await fs.readFile(path.join(base, "state", "lifeboat", "console", "audit.log"), "utf8");
    assert.equal(file.trim().split("\n").length, r.body.entries.length);
    const st = await fs.stat(path.join(base, "state", "lifeboat", "console", "users.json"));
    assert.equal(st.mode & 0o777, 0o600);
    assert.doesNotMatch(
      await fs.readFile(path.join(base, "state", "lifeboat", "console", "users.json"), "utf8"),
      new RegExp(server.token),
      "only a hash of the token is stored",
    );
  });

  test("users: removing one signs it out", async () => {
    const u = await admin.post<{ token: string }>("/api/users", { name: "tmp", role: "viewer" });
    const c = await ConsoleClient.signIn(server.url, "tmp", u.body.token);
    assert.equal((await c.get("/api/overview")).status, 200);
    assert.equal((await admin.request("DELETE", "/api/users/tmp")).status, 200);
    assert.equal((await c.get("/api/overview")).status, 401);
    assert.equal((await admin.request("DELETE", "/api/users/tmp")).status, 404);
    assert.equal((await admin.post("/api/users", { name: "bad name!", role: "viewer" })).status, 400);
    assert.equal((await admin.post("/api/users", { name: "x", role: "root" })).status, 400);
  });
});

describe("listening", () => {
  test("with --tls-cert/--tls-key it serves HTTPS and the session cookie is Secure", async () => {
    const cert = path.join(base, "cert.pem");
    const key = path.join(base, "key.pem");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        key,
        "-out",
        cert,
      ],
      { stdio: "ignore" },
    );
    const tls = await startConsole(env, ["--tls-cert", cert, "--tls-key", key]);
    try {
      assert.match(tls.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const ca = await fs.readFile(cert);
      const { status, setCookie } = await new Promise<{ status: number; setCookie: string }>(
        (resolve, reject) => {
          const req = https.request(
            `${tls.url}/api/login`,
            { method: "POST", ca, headers: { "content-type": "application/json" } },
            (res) => {
              res.resume();
              resolve({ status: res.statusCode ?? 0, setCookie: String(res.headers["set-cookie"] ?? "") });
            },
          );
          req.on("error", reject);
          req.end(JSON.stringify({ user: "admin", token: server.token }));
        },
      );
      assert.equal(status, 200);
      assert.match(setCookie, /Secure/);
    } finally {
      await tls.stop();
    }
  });

  test("an address other than loopback needs TLS or --insecure-listen", async () => {
    const r = await import("../support/cli.js").then((m) => m.run(["ui", "--listen", "0.0.0.0:0"], { env }));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /without TLS/);
  });
});
