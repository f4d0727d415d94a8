import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryBackend } from "../../backend/memory.js";
import { Repository } from "../../repo/repository.js";
import { backupStream } from "../backup.js";
import { configSchema } from "../config.js";
import { ConsoleRepo, repoSpecs } from "./repos.js";
import { buildSources, pageSources } from "./sources.js";

process.env.LIFEBOAT_KDF_N ??= "1024";
const HOUR = 3600_000;

async function* bytes(s: string) {
  yield Buffer.from(s);
}

test("source states: never, late against twice the job's period, failing after a failed run, protected", async () => {
  const repo = await Repository.init(memoryBackend(), "pw");
  const now = Date.now();
  const snap = (name: string, tags: string[], agoMs: number, host = "h1") =>
    backupStream(repo, bytes(name), name, { tags, host, time: new Date(now - agoMs) });
  await snap("hourly.txt", ["job:hourly"], 3 * HOUR); // every 1h: RPO 2h, 3h old -> late
  await snap("daily.txt", ["job:daily"], 3 * HOUR); // every 1d: RPO 2d -> protected
  await snap("broken.txt", ["job:broken"], 3 * HOUR); // its last run failed after this one
  await snap("loose.txt", [], 3 * 86_400_000); // no job: console.rpo 2d, 3 days old -> late
  const config = configSchema.parse({
    jobs: [
      { name: "hourly", backup: "/x", every: "1h" },
      { name: "daily", backup: "/x", every: "1d" },
      { name: "broken", backup: "/x", every: "1d" },
      { name: "fresh", backup: "/y", every: "1d" },
    ],
  });
  const repos = repoSpecs("memory:test", undefined, config.jobs).map(
    (s) => new ConsoleRepo(s, async () => repo),
  );
  const rows = await buildSources({
    repos,
    jobs: config.jobs,
    jobState: { broken: { lastRun: new Date(now - HOUR).toISOString(), lastExitCode: 16 } },
    defaultRpoMs: 2 * 86_400_000,
    now,
  });
  const state = (name: string) => rows.find((r) => r.name === name || r.name.endsWith(name))?.state;
  assert.equal(state("hourly"), "late");
  assert.equal(state("daily"), "protected");
  assert.equal(state("broken"), "failing");
  assert.match(rows.find((r) => r.name === "broken")!.reason, /exit code 16/);
  assert.equal(state("fresh"), "never");
  assert.equal(state("/loose.txt"), "late");
  assert.equal(rows.find((r) => r.name === "hourly")!.rpoSeconds, 7200);
  // Worst first by default; ties by name.
  const page = pageSources(rows, { offset: 0, limit: 10 });
  assert.deepEqual(
    page.items.map((r) => r.state),
    ["failing", "late", "late", "never", "protected"],
  );
  assert.equal(pageSources(rows, { offset: 0, limit: 10, state: "late" }).total, 2);
  await repo.close();
});
