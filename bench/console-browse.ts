/**
 * `npm run bench:console [-- COUNT]`: how fast the console opens a folder of COUNT entries
 * (default 100,000). A snapshot with one such folder is made (a tree source of small files) in a
 * local repository; the console is started on 127.0.0.1 and timed:
 *   - over HTTP: the first page of the folder with a cold tree cache (the repository reads and
 *     decodes the tree), again warm, sorted by size (cold sort, then cached), a page at the end,
 *     and a name filter;
 *   - in Chromium (when /usr/bin/chromium exists): from opening the folder's URL to its first
 *     row drawn, with the tree not cached (ROUNDS times, default 5; medians), split into the
 *     page's own CPU time (Chromium's main thread, from DevTools' Performance metrics), the
 *     server's CPU time (this process) and the server's wait for the first page; the number of
 *     folder requests per open; then the same with the tree cached (warm: the difference is
 *     the tree's read and decode); then from scrolling to the end to the last row drawn.
 *     The server runs in this process beside Playwright's client, whose work counts in the
 *     server's CPU time too (the warm figure holds it).
 * The machine's load average is printed with the figures: on a busy machine compare CPU times
 * and figures of the same run rather than wall times of different runs.
 * Target: the folder opens in under a second.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { configSchema } from "../src/app/config.js";
import { startConsole } from "../src/app/console/server.js";
import { localBackend } from "../src/backend/local.js";
import { Repository } from "../src/repo/repository.js";
import type { SourceEntry, TreeSource } from "../src/snapshot/source.js";
import { takeSnapshot } from "../src/snapshot/take.js";

const count = Number(process.argv[2] ?? 100_000);
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-bench-console-"));
process.env.LIFEBOAT_KDF_N ??= "1024";

try {
  const repoPath = path.join(dir, "repo");
  let repo = await Repository.init(localBackend({ path: repoPath }), "pw");
  const meta = { mode: 0o644, uid: 0, gid: 0, mtime: String(BigInt(Date.now()) * 1_000_000n) };
  const folder: SourceEntry[] = [];
  for (let i = 0; i < count; i++) {
    const body = Buffer.from(`message ${i}\n`);
    folder.push({
      kind: "file",
      name: `msg-${String(i).padStart(7, "0")}.eml`,
      meta: { ...meta, mtime: String(BigInt(Date.now() - i * 1000) * 1_000_000n) },
      size: body.length,
      content: {
        kind: "stream",
        read: async function* () {
          yield body;
        },
      },
    });
  }
  const source: TreeSource = {
    paths: ["/mail"],
    root: {
      path: "/",
      synthetic: true,
      entries: async () => [
        {
          kind: "dir",
          name: "mail",
          meta: { ...meta, mode: 0o755 },
          dir: { path: "/mail", entries: async () => folder },
        },
      ],
    },
  };
  let t = performance.now();
  const snap = await takeSnapshot(repo, source, { host: "bench" });
  const backupMs = performance.now() - t;
  await repo.close();
  const stateDir = path.join(dir, "state");
  const server = await startConsole({
    host: "127.0.0.1",
    port: 0,
    repository: repoPath,
    open: async () => {
      repo = await Repository.open(localBackend({ path: repoPath }), "pw");
      return repo;
    },
    config: configSchema.parse({}),
    stateDir,
  });
  const login = await fetch(`${server.url}api/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user: "admin", token: server.firstToken }),
  });
  const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0]!;
  const page = async (query: string) => {
    const t0 = performance.now();
    const r = await fetch(
      `${server.url}api/repos/main/snapshots/${snap.snapshotId}/tree?path=/mail&${query}`,
      {
        headers: { cookie },
      },
    );
    const body = (await r.json()) as { total: number; entries: unknown[] };
    if (r.status !== 200 || body.total < 1)
      throw new Error(`tree: ${r.status} ${JSON.stringify(body).slice(0, 200)}`);
    return Math.round((performance.now() - t0) * 10) / 10;
  };
  // Open the repository (index load) first, so the cold figure is the folder's tree alone.
  await fetch(`${server.url}api/repos/main/snapshots`, { headers: { cookie } });
  const http = {
    firstPageColdMs: await page("limit=500"),
    firstPageWarmMs: await page("limit=500"),
    sortBySizeColdMs: await page("limit=500&sort=size&order=desc"),
    sortBySizeWarmMs: await page("limit=500&sort=size&order=desc"),
    lastPageMs: await page(`offset=${count - 500}&limit=500`),
    filterMs: await page("limit=500&q=99"),
  };
  let browser: Record<string, number | number[]> | string = "skipped: /usr/bin/chromium is not installed";
  if (
    await fs.stat("/usr/bin/chromium").then(
      () => true,
      () => false,
    )
  ) {
    const { chromium } = await import("playwright-core");
    const b = await chromium.launch({
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
    const ctx = await b.newContext({ viewport: { width: 1400, height: 900 } });
    const [name, value] = cookie.split("=");
    await ctx.addCookies([{ name: name!, value: value!, url: server.url }]);
    const p = await ctx.newPage();
    // The page's own CPU (Chromium's main thread: script, style, layout, paint), from DevTools.
    const cdp = await ctx.newCDPSession(p);
    await cdp.send("Performance.enable");
    const taskSeconds = async () =>
      (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === "TaskDuration")?.value ?? 0;
    let treeRequests = 0;
    p.on("request", (r) => {
      if (r.url().includes("/tree?")) treeRequests++;
    });
    type Open = {
      wallMs: number;
      pageCpuMs: number;
      serverCpuMs: number;
      treeWaitMs: number;
      treeRequests: number;
    };
    const opens: Open[] = [];
    const warmOpens: Open[] = [];
    const rounds = Number(process.env.ROUNDS ?? 5);
    // Cold rounds first, then warm ones (the tree cached): their difference is the tree's read.
    for (let round = 0; round < 2 * rounds; round++) {
      const cold = round < rounds;
      await p.goto(`${server.url}#/overview`);
      await p.waitForSelector("[data-testid=me]");
      await p.waitForLoadState("networkidle");
      // A fresh repository handle: the folder's tree is read again (cold), as on a first visit.
      if (cold) await repo.reloadIndex();
      // The garbage of the index and tree just dropped is collected now, not during the open.
      gc();
      await p.evaluate(() => performance.clearResourceTimings());
      treeRequests = 0;
      const task0 = await taskSeconds();
      const cpu0 = process.cpuUsage();
      t = performance.now();
      await p.goto(`${server.url}#/browse/main/${snap.snapshotId}?path=/mail`);
      await p.waitForSelector(`.frow[data-name="msg-0000000.eml"]`);
      const wallMs = performance.now() - t;
      const cpu = process.cpuUsage(cpu0);
      const pageCpuMs = ((await taskSeconds()) - task0) * 1000;
      // How long the server took to answer the folder's first page (request sent to first byte).
      const treeWaitMs = await p.evaluate(() =>
        Math.max(
          0,
          ...performance
            .getEntriesByType("resource")
            .filter((e) => e.name.includes("/tree?"))
            .map((e) => {
              const r = e as unknown as { responseStart: number; requestStart: number };
              return r.responseStart - r.requestStart;
            }),
        ),
      );
      (cold ? opens : warmOpens).push({
        wallMs,
        pageCpuMs,
        serverCpuMs: (cpu.user + cpu.system) / 1000,
        treeWaitMs,
        treeRequests,
      });
    }
    const median = (k: keyof Open, list = opens) =>
      Math.round(list.map((o) => o[k]).sort((a, b) => a - b)[Math.floor(list.length / 2)]!);
    t = performance.now();
    await p.$eval("[data-testid=folder]", (el) => {
      el.scrollTop = el.scrollHeight;
    });
    await p.waitForSelector(`.frow[data-name="msg-${String(count - 1).padStart(7, "0")}.eml"]`);
    const endMs = performance.now() - t;
    browser = {
      rounds,
      openFolderMs: median("wallMs"),
      openFolderMsEach: opens.map((o) => Math.round(o.wallMs)),
      pageCpuMs: median("pageCpuMs"),
      serverCpuMs: median("serverCpuMs"),
      serverWaitForFirstPageMs: median("treeWaitMs"),
      treeRequestsPerOpen: median("treeRequests"),
      warmOpenFolderMs: median("wallMs", warmOpens),
      warmPageCpuMs: median("pageCpuMs", warmOpens),
      warmServerCpuMs: median("serverCpuMs", warmOpens),
      scrollToEndMs: Math.round(endMs),
      rowsInPage: (await p.$$(".frow")).length,
    };
    await b.close();
  }
  console.log(
    JSON.stringify(
      {
        entries: count,
        backupSeconds: Math.round(backupMs / 100) / 10,
        http,
        browser,
        node: process.version,
        loadAverage: os.loadavg().map((x) => Math.round(x * 10) / 10),
      },
      null,
      2,
    ),
  );
  await server.close();
} finally {
  await fs.rm(dir, { recursive: true, force: true });
}
