import { promises as fs } from "node:fs";
import path from "node:path";
import { log } from "./log.js";
import { type BenchProfile, exists } from "./profiles.js";
import { summarize, type TreeSummary } from "./tree.js";

/** A generated dataset, reused by every run until its profile's key changes. */
export interface Dataset {
  /** The folder the tools back up. */
  root: string;
  summary: TreeSummary;
  /** Summaries of the zeros profile's case folders. */
  parts: Record<string, TreeSummary>;
  /** Present while a run has the dataset changed (see Mutation). */
  marker: string;
}

interface Manifest {
  key: string;
  summary: TreeSummary;
  parts: Record<string, TreeSummary>;
  generatedSeconds: number;
}

/**
 * `<cache>/<profile>/data` holds the tree, `manifest.json` its key and summary. A dataset is
 * made again when the key differs, when the manifest is missing (a generation that did not
 * finish) or when the change marker is there (a run that died before undoing its changes).
 */
export async function prepareDataset(cacheDir: string, p: BenchProfile): Promise<Dataset> {
  const dir = path.join(cacheDir, p.name);
  const root = path.join(dir, "data");
  const marker = path.join(dir, "CHANGED");
  const manifestFile = path.join(dir, "manifest.json");
  const old = (await exists(manifestFile))
    ? (JSON.parse(await fs.readFile(manifestFile, "utf8")) as Manifest)
    : undefined;
  if (old && old.key === p.key && !(await exists(marker)) && (await exists(root))) {
    log(`dataset ${p.name}: reusing ${root}`);
    return { root, summary: old.summary, parts: old.parts, marker };
  }
  const why = !old
    ? "not generated yet"
    : old.key !== p.key
      ? "generator or size changed"
      : "left changed by a run that stopped";
  log(`dataset ${p.name}: generating in ${root} (${why}) ...`);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(root, { recursive: true });
  const t0 = performance.now();
  await p.generate(root);
  const summary = summarize(root);
  const parts: Record<string, TreeSummary> = {};
  if (p.kind === "zeros") for (const c of p.cases) parts[c.folder] = summarize(path.join(root, c.folder));
  const manifest: Manifest = {
    key: p.key,
    summary,
    parts,
    generatedSeconds: (performance.now() - t0) / 1000,
  };
  await fs.writeFile(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
  log(
    `dataset ${p.name}: ${summary.files} files, ${(summary.bytes / 2 ** 20).toFixed(1)} MiB in ${manifest.generatedSeconds.toFixed(0)} s`,
  );
  return { root, summary, parts, marker };
}
