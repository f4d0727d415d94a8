/**
 * The console end to end in a real browser (Debian's Chromium driven by playwright-core, on
 * 127.0.0.1 only): sign in; watch a source go from "never" to "protected" after a backup;
 * browse a snapshot (a folder of 10,000 entries) and download a file whose bytes are compared;
 * restore a folder as it was at a time; see a wiped backup flagged and acknowledge it; a viewer
 * cannot restore; a request without the CSRF token is refused. Screenshots of every page go to
 * docs/ui/ (the README shows one).
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { ensurePackages } from "../support/apt.js";
import { baseEnv, run, runOk, tempDir } from "../support/cli.js";
import { ConsoleClient, type ConsoleServer, startConsole } from "../support/console.js";

/** docs/ui in the checkout (tests run from dist/test/console). */
const SHOTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "docs", "ui");

let base: string;
let env: Record<string, string>;
let server: ConsoleServer;
let browser: Browser;
let admin: BrowserContext;
let page: Page;
let viewerToken: string;
let firstTime: Date;
const src = () => path.join(base, "src");

const localInput = (d: Date) => {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};

async function shot(p: Page, name: string): Promise<void> {
  await fs.mkdir(SHOTS, { recursive: true });
  await p.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

before(async () => {
  ensurePackages({ "/usr/bin/chromium": "chromium" });
  base = await tempDir("lifeboat-console-ui-");
  await fs.mkdir(path.join(src(), "projects", "report"), { recursive: true });
  await fs.writeFile(path.join(src(), "projects", "report", "draft.txt"), "first draft\n");
  await fs.writeFile(path.join(src(), "projects", "report", "figures.csv"), "x,y\n1,2\n");
  await fs.writeFile(path.join(src(), "projects", "notes.md"), "# notes\n\nkept in the backup\n");
  await fs.mkdir(path.join(src(), "inbox"));
  for (let i = 0; i < 10_000; i++)
    await fs.writeFile(path.join(src(), "inbox", `msg-${String(i).padStart(5, "0")}.eml`), `${i}\n`);
  await fs.mkdir(path.join(base, "photos"));
  await fs.writeFile(path.join(base, "photos", "cat.jpg"), Buffer.alloc(3000, 7));
  await fs.mkdir(path.join(base, "shared"));
  for (let i = 0; i < 20; i++)
    await fs.writeFile(path.join(base, "shared", `doc${i}.txt`), `document ${i}\n`.repeat(40));
  await fs.mkdir(path.join(base, "restores"));
  const config = path.join(base, "config.json");
  await fs.writeFile(
    config,
    JSON.stringify({
      jobs: [
        { name: "photos", backup: path.join(base, "photos"), every: "1d", keep: { daily: 7, weekly: 4 } },
        { name: "shared", backup: path.join(base, "shared"), every: "6h" },
      ],
      console: { restoreRoots: [path.join(base, "restores")] },
    }),
  );
  env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(base, "repo"),
    LIFEBOAT_PASSWORD: "pw",
    LIFEBOAT_CONFIG: config,
    XDG_STATE_HOME: path.join(base, "state"),
  });
  await runOk(["init"], { env });
  await runOk(["backup", src()], { env });
  firstTime = new Date();
  await new Promise((r) => setTimeout(r, 1100));
  await fs.writeFile(path.join(src(), "projects", "report", "draft.txt"), "second draft, much longer\n");
  await fs.rm(path.join(src(), "projects", "report", "figures.csv"));
  await runOk(["backup", src()], { env });
  server = await startConsole(env);
  const api = await ConsoleClient.signIn(server.url, "admin", server.token);
  const v = await api.post<{ token: string }>("/api/users", { name: "vera", role: "viewer" });
  viewerToken = v.body.token;
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  admin = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  page = await admin.newPage();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await fs.rm(base, { recursive: true, force: true });
});

test("sign in", async () => {
  await page.goto(server.url);
  await page.waitForSelector("form input[name=token]");
  await shot(page, "sign-in");
  await page.fill("input[name=user]", "admin");
  await page.fill("input[name=token]", "not the token");
  await page.click("button[type=submit]");
  await page.waitForSelector("text=wrong user name or token");
  await page.fill("input[name=token]", server.token);
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=me]");
  assert.equal(await page.textContent("[data-testid=me]"), "admin");
});

test("a source goes from never to protected after a backup, while the page watches", async () => {
  await page.goto(`${server.url}/#/overview`);
  const row = 'tr[data-source="photos"]';
  await page.waitForSelector(`${row} [data-state="never"]`);
  const r = await run(["run", "photos"], { env });
  assert.equal(r.code, 0, r.stderr);
  await page.waitForSelector(`${row} [data-state="protected"]`, { timeout: 20_000 });
  await runOk(["run", "shared"], { env });
  await page.waitForSelector('tr[data-source="shared"] [data-state="protected"]', { timeout: 20_000 });
  await shot(page, "overview");
});

test("browse a snapshot (10,000 entries in a folder) and download a file whose bytes match", async () => {
  const snaps = (await (
    await fetch(`${server.url}/api/repos/main/snapshots`, { headers: await cookieOf(admin) })
  ).json()) as {
    id: string;
    paths: string[];
  }[];
  const newest = snaps.filter((s) => s.paths[0] === src()).at(-1)!;
  await page.goto(`${server.url}/#/browse/main/${newest.id}?path=${encodeURIComponent(`${src()}/inbox`)}`);
  await page.waitForSelector("[data-testid=folder][data-total='10000']");
  await page.waitForSelector('.frow[data-name="msg-00000.eml"]');
  // Scroll to the end: the last page is fetched and its rows drawn.
  await page.$eval("[data-testid=folder]", (el) => {
    el.scrollTop = el.scrollHeight;
  });
  await page.waitForSelector('.frow[data-name="msg-09999.eml"]');
  assert.ok((await page.$$(".frow")).length < 200, "only the rows in view exist in the page");
  await page.click('.frow[data-name="msg-09999.eml"]');
  await page.waitForSelector("pre.preview-text");
  await shot(page, "browse");
  await page.goto(`${server.url}/#/browse/main/${newest.id}?path=${encodeURIComponent(`${src()}/projects`)}`);
  await page.click('.frow[data-name="report"]');
  await page.click('.frow[data-name="draft.txt"]');
  await page.waitForSelector("pre.preview-text");
  await page.waitForSelector("text=second draft, much longer");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("[data-testid=download]")]);
  const saved = path.join(base, "downloaded.txt");
  await download.saveAs(saved);
  assert.ok(
    (await fs.readFile(saved)).equals(await fs.readFile(path.join(src(), "projects", "report", "draft.txt"))),
    "the downloaded bytes are the file's",
  );
});

test("restore a folder as it was at a time", async () => {
  await page.goto(`${server.url}/#/restore`);
  await page.waitForSelector("select[name=source] option:nth-child(2)", { state: "attached" });
  const sourceId = await page.$eval(
    "select[name=source]",
    (el, p) =>
      Array.from(
        (el as unknown as { options: ArrayLike<{ textContent: string | null; value: string }> }).options,
      ).find((o) => o.textContent?.includes(p))?.value ?? "",
    src(),
  );
  assert.ok(sourceId, "the backed-up folder is a source");
  await page.selectOption("select[name=source]", sourceId);
  await page.check("input[name=mode]:not(:checked)");
  await page.fill("input[name=at]", localInput(firstTime));
  await page.fill("input[name=path]", `${src()}/projects`);
  const target = path.join(base, "restores", "projects-then");
  await page.fill("input[name=target]", target);
  await page.click("button[name=preview]");
  await page.waitForSelector("[data-testid=restore-preview], .error");
  const error = await page.$(".error");
  assert.equal(error, null, (await error?.textContent()) ?? "");
  assert.match((await page.textContent("[data-testid=restore-preview]")) ?? "", /3 files/);
  await page.click("button[name=restore]");
  await page.waitForSelector("[data-testid=restore-done]", { timeout: 60_000 });
  await shot(page, "restore");
  assert.equal(await fs.readFile(path.join(target, "report", "draft.txt"), "utf8"), "first draft\n");
  assert.equal(await fs.readFile(path.join(target, "report", "figures.csv"), "utf8"), "x,y\n1,2\n");
});

test("a wiped backup is flagged, and an operator acknowledges it", async () => {
  for (let i = 1; i < 20; i++) await fs.rm(path.join(base, "shared", `doc${i}.txt`));
  const r = await run(["run", "shared"], { env });
  assert.equal(r.code, 4, `the run exits 4 for a flagged snapshot\n${r.stderr}`);
  await page.goto(`${server.url}/#/overview`);
  await page.waitForSelector('tr[data-source="shared"] [data-state="failing"]', { timeout: 20_000 });
  await page.goto(`${server.url}/#/history/job:shared`);
  await page.waitForSelector("[data-testid=flag] button[name=ack]");
  assert.match((await page.textContent("[data-testid=flag]")) ?? "", /FLAGGED/);
  await shot(page, "history");
  await page.click("[data-testid=flag] button[name=ack]");
  await page.waitForSelector("text=flagged, acknowledged");
  await page.goto(`${server.url}/#/overview`);
  await page.waitForSelector('tr[data-source="shared"] [data-state="protected"]', { timeout: 20_000 });
});

test("a viewer cannot restore", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const v = await ctx.newPage();
  await v.goto(server.url);
  await v.fill("input[name=user]", "vera");
  await v.fill("input[name=token]", viewerToken);
  await v.click("button[type=submit]");
  await v.waitForSelector("[data-testid=me]");
  await v.goto(`${server.url}/#/restore`);
  await v.waitForSelector("text=Restoring needs the operator role");
  // And the API refuses it even when asked directly, with a valid CSRF token.
  const status = await v.evaluate(
    async (target) => {
      const me = (await (await fetch("/api/session")).json()) as { csrf: string };
      const snaps = (await (await fetch("/api/repos/main/snapshots")).json()) as { id: string }[];
      const r = await fetch("/api/restore", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": me.csrf },
        body: JSON.stringify({ repo: "main", snapshot: snaps[0]!.id, path: "/", target }),
      });
      return r.status;
    },
    path.join(base, "restores", "by-viewer"),
  );
  assert.equal(status, 403);
  await assert.rejects(fs.stat(path.join(base, "restores", "by-viewer")));
  await ctx.close();
});

test("a request without the CSRF token is refused", async () => {
  const res = await page.evaluate(
    async (target) => {
      const snaps = (await (await fetch("/api/repos/main/snapshots")).json()) as { id: string }[];
      const r = await fetch("/api/restore", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ repo: "main", snapshot: snaps[0]!.id, path: "/", target }),
      });
      return { status: r.status, body: (await r.json()) as { error: { code: string } } };
    },
    path.join(base, "restores", "no-csrf"),
  );
  assert.equal(res.status, 403);
  assert.equal(res.body.error.code, "CSRF");
  await assert.rejects(fs.stat(path.join(base, "restores", "no-csrf")));
});

test("the other pages render (screenshots for docs/ui)", async () => {
  await page.goto(`${server.url}/#/integrity`);
  await page.waitForSelector('tr[data-source="photos"] button[name=drill]');
  await page.click('tr[data-source="photos"] button[name=drill]');
  await page.waitForSelector('tr[data-source="photos"] [data-task-state="done"]', { timeout: 60_000 });
  // The drill read a snapshot another process (`lifeboat run`) wrote after the console opened
  // the repository: it passed, and the source is now proven restorable.
  await page.waitForSelector('tr[data-source="photos"] .badge-protected:text("passed")', { timeout: 20_000 });
  await shot(page, "integrity");
  await page.goto(`${server.url}/#/policies`);
  await page.waitForSelector("button[name=simulate]");
  await page.selectOption("select[name=job]", "photos");
  await page.click("button[name=simulate]");
  await page.waitForSelector("[data-testid=simulation]");
  assert.match(
    (await page.textContent("[data-testid=simulation]")) ?? "",
    /lifeboat forget --keep-daily 7 --tag job:photos --dry-run/,
  );
  await shot(page, "policies");
  await page.goto(`${server.url}/#/activity`);
  await page.waitForSelector("text=Backlog");
  await shot(page, "activity");
  await page.goto(`${server.url}/#/audit`);
  await page.waitForSelector("[data-testid=audit] tbody tr");
  await shot(page, "audit");
});

async function cookieOf(ctx: BrowserContext): Promise<Record<string, string>> {
  const c = (await ctx.cookies()).find((x) => x.name === "lifeboat_console");
  return c ? { cookie: `${c.name}=${c.value}` } : {};
}
