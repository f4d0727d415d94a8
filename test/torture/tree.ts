/**
 * A folder that changes from round to round the way a user's folder does, deterministically
 * from a seed: a large file with bytes inserted (most chunks stay), small files edited, added and
 * removed, hidden files and folders, a mode change, symlinks (one dangling), a hard-link pair,
 * an empty folder, names with spaces and accents.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { prng } from "../support/cli.js";
import { between, rng } from "./support.js";

const KiB = 1024;

export interface TreeShape {
  /** Size of the large file at round 0. */
  bigBytes: number;
  /** Small files in docs/ at round 0. */
  docs: number;
  /** Medium files in media/ at round 0. */
  media: number;
}

export const DEFAULT_SHAPE: TreeShape = { bigBytes: 6 * 1024 * KiB, docs: 30, media: 5 };

function text(seed: string, n: number): Buffer {
  // Compressible, like documents: words from a small vocabulary.
  const words = ["boat", "life", "tide", "keel", "oar", "sail", "harbour", "rope", "mast", "deck"];
  const r = rng(seed);
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const w = words[Math.floor(r() * words.length)]!;
    parts.push(w);
    len += w.length + 1;
  }
  return Buffer.from(parts.join(" ").slice(0, n));
}

/** Writes round `round` of the tree at `dir` (round 0 creates it; later rounds change it). */
export async function evolve(dir: string, round: number, seed: string, shape = DEFAULT_SHAPE): Promise<void> {
  const r = rng(`${seed}/${round}`);
  const at = (...p: string[]) => path.join(dir, ...p);
  if (round === 0) {
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(at("docs", "deep", "deeper"), { recursive: true });
    await fs.mkdir(at(".config", "app"), { recursive: true });
    await fs.mkdir(at("media"));
    await fs.mkdir(at("empty"));
    await fs.writeFile(at("big.bin"), prng(shape.bigBytes, `${seed}-big`));
    for (let i = 0; i < shape.docs; i++) {
      const sub = i % 3 === 0 ? "docs" : i % 3 === 1 ? "docs/deep" : "docs/deep/deeper";
      await fs.writeFile(at(sub, `note-${i}.txt`), text(`${seed}-doc-${i}`, between(r, 100, 40 * KiB)));
    }
    for (let i = 0; i < shape.media; i++)
      await fs.writeFile(at("media", `m${i}.raw`), prng(between(r, 200 * KiB, 1500 * KiB), `${seed}-m${i}`));
    await fs.writeFile(at(".hidden"), "secret 0\n");
    await fs.writeFile(at(".config", "app", "settings.json"), '{"round":0}\n');
    await fs.writeFile(at("naïve café.txt"), "accents and spaces\n");
    await fs.writeFile(at("media", "hard-a"), prng(50 * KiB, `${seed}-hard`));
    await fs.link(at("media", "hard-a"), at("media", "hard-b"));
    await fs.symlink("docs", at("link-to-docs"));
    await fs.symlink("nowhere/at/all", at("dangling"));
    await fs.chmod(at("docs", "note-0.txt"), 0o600);
    return;
  }
  // The large file: a few bytes inserted somewhere (content-defined chunks around it change).
  const big = await fs.readFile(at("big.bin"));
  const pos = between(r, 0, big.length);
  await fs.writeFile(
    at("big.bin"),
    Buffer.concat([
      big.subarray(0, pos),
      prng(between(r, 1, 300), `${seed}-ins-${round}`),
      big.subarray(pos),
    ]),
  );
  // Small files: some edited, one removed, two added.
  const docs = await listFiles(at("docs"));
  for (let k = 0; k < 3 && docs.length > 0; k++) {
    const f = docs[between(r, 0, docs.length - 1)]!;
    await fs.appendFile(f, text(`${seed}-edit-${round}-${k}`, between(r, 10, 5 * KiB)));
  }
  if (docs.length > 5) await fs.rm(docs[between(r, 0, docs.length - 1)]!, { force: true });
  for (let k = 0; k < 2; k++) {
    const sub = ["docs", "docs/deep", "docs/deep/deeper"][between(r, 0, 2)]!;
    await fs.writeFile(
      at(sub, `new-${round}-${k}.txt`),
      text(`${seed}-new-${round}-${k}`, between(r, 50, 20 * KiB)),
    );
  }
  // Media: now and then a new file, now and then one fewer.
  if (r() < 0.5)
    await fs.writeFile(
      at("media", `r${round}.raw`),
      prng(between(r, 100 * KiB, 800 * KiB), `${seed}-r${round}`),
    );
  if (r() < 0.3) {
    const media = (await fs.readdir(at("media"))).filter((n) => n.startsWith("r"));
    if (media.length > 0) await fs.rm(at("media", media[0]!));
  }
  await fs.writeFile(at(".hidden"), `secret ${round}\n`);
  await fs.writeFile(at(".config", "app", "settings.json"), `{"round":${round}}\n`);
  await fs.chmod(at("naïve café.txt"), round % 2 === 0 ? 0o644 : 0o640);
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}
