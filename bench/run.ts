/**
 * `npm run bench [-- --profile mail --pairs 5 --cache warm,cold ...]` (`-- --help` lists the
 * options): runs the same workload with lifeboat, restic and borg on this machine, step by step,
 * each step for every tool in turn, N times (pairs), with a warm and with a dropped page cache,
 * and puts one table per profile and cache state into docs/benchmarks.md (which says how to
 * read them). Datasets are generated once into a cache folder and reused.
 */
import { existsSync, promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { prepareDataset } from "./dataset-cache.js";
import { log } from "./log.js";
import {
  canDropCaches,
  checkRssCountsThreads,
  ensureInstalled,
  fsType,
  loadAverage,
  machine,
} from "./machine.js";
import { parseOptions, UsageError } from "./options.js";
import { type CacheState, type PairContext, type TreeState, treePair, zerosPair } from "./pairs.js";
import { profiles, scaleSuffix } from "./profiles.js";
import { mergeSections, type RunInfo, renderGrowth, renderSection, type Section } from "./report.js";
import { Results } from "./results.js";
import { tools as allTools, cliOf } from "./tools.js";
import { Trash } from "./trash.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, "..", "..");

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const o = parseOptions(args, projectRoot);
  if (!existsSync(cliOf(o.lifeboatRoot)))
    throw new Error(
      `${o.lifeboatRoot}/dist/ is missing: run \`npm run build\` there (npm run bench does here)`,
    );
  ensureInstalled();
  await fs.mkdir(o.work, { recursive: true });
  await fs.mkdir(o.data, { recursive: true });

  let caches = o.caches;
  if (caches.includes("cold")) {
    const can = canDropCaches();
    if (!can.ok) {
      log(`cannot drop the page cache (${can.why}): the cold runs are left out`);
      caches = caches.filter((c) => c !== "cold");
      if (caches.length === 0) throw new Error("nothing to measure: only --cache cold was asked for");
    }
    for (const dir of [o.work, o.data])
      if (fsType(dir) === "tmpfs")
        log(`warning: ${dir} is on tmpfs, where a dropped page cache changes nothing`);
  }
  checkRssCountsThreads(o.work);
  const trash = new Trash(path.join(o.work, "trash"));

  const table = allTools(o.lifeboatRoot);
  const tools = o.tools.map((n) => table[n]);
  const info: RunInfo = {
    command: `npm run bench${args.length > 0 ? ` -- ${args.join(" ")}` : ""}`,
    date: new Date().toISOString().slice(0, 10),
    machine: machine(o.work),
    versions: tools.map((t) => t.version()).join(", "),
    pairs: o.pairs,
  };
  log(`${info.machine}\n${info.versions}`);

  const sections: Section[] = [];
  const growth = new Map<CacheState, { count: number; results: Results }[]>();
  for (const p of profiles(o.profiles, o.scale, o.files)) {
    const ds = await prepareDataset(o.data, p);
    const state: TreeState = {};
    for (const cache of caches) {
      const results = new Results();
      const ctx: PairContext = {
        tools,
        cache,
        work: path.join(o.work, "pair"),
        results,
        trash,
        label: `${p.name} ${cache}`,
        pairs: o.pairs,
      };
      const start = loadAverage();
      for (let i = 0; i < o.pairs; i++) {
        if (p.kind === "tree") await treePair(ctx, p, ds, i, state);
        else await zerosPair(ctx, p, ds, i);
      }
      const load = { start, end: loadAverage() };
      const find = p.kind === "tree" ? p.findPattern : undefined;
      const s = renderSection(
        p.name,
        p.title,
        p.describe,
        ds.summary,
        cache,
        results,
        o.tools,
        info,
        load,
        find,
      );
      sections.push(s);
      console.log(`${s.text}\n`);
      if (p.kind === "tree" && p.fileCount !== undefined) {
        growth.set(cache, [...(growth.get(cache) ?? []), { count: p.fileCount, results }]);
      }
    }
  }
  for (const [cache, runs] of growth) {
    if (runs.length < 2) continue;
    const s = renderGrowth(`files-growth${scaleSuffix(o.scale)}`, cache, runs, o.tools, info);
    sections.push(s);
    console.log(`${s.text}\n`);
  }
  trash.empty(false);
  if (o.out) {
    const doc = existsSync(o.out) ? await fs.readFile(o.out, "utf8") : "# Benchmarks\n";
    await fs.writeFile(o.out, mergeSections(doc, sections));
    log(`written to ${path.relative(process.cwd(), o.out) || o.out}`);
  }
}

try {
  await main();
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(2);
}
