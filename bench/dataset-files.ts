import fs from "node:fs";
import path from "node:path";
import type { Mutation } from "./mutation.js";
import { between, keystream, prose, rng, word } from "./random.js";

/**
 * Many tiny files: N files of 4 bytes to 8 KiB (log-uniform, ≈1 KiB on average), 100 to a
 * folder, 100 folders to a parent (p000/q00/item-0000000.txt). Text, JSON, config, log and
 * markdown slices, and 5% random bytes. Every file's name, size and content follow from its
 * number, so the changes can name files without listing folders. mtimes are fixed.
 */
export const FILE_COUNTS: Record<string, number> = { "10k": 10_000, "100k": 100_000, "1m": 1_000_000 };

const EXTS = [
  "txt",
  "txt",
  "txt",
  "txt",
  "txt",
  "txt",
  "json",
  "json",
  "json",
  "json",
  "json",
  "cfg",
  "cfg",
  "cfg",
  "log",
  "log",
  "log",
  "md",
  "md",
  "bin",
] as const;
type Ext = (typeof EXTS)[number];

/** A number in [0, 1) that depends only on i and salt (a hash, not a stream). */
function unit(i: number, salt: number): number {
  let x = Math.imul(i ^ Math.imul(salt, 0x9e3779b1), 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return x / 4294967296;
}

function extOf(i: number): Ext {
  return EXTS[Math.floor(unit(i, 1) * EXTS.length)]!;
}

function sizeOf(i: number, salt = 2): number {
  return Math.floor(4 * 2048 ** unit(i, salt));
}

const pad = (n: number, w: number) => String(n).padStart(w, "0");

function dirOf(i: number): string {
  const d = Math.floor(i / 100);
  return path.join(`p${pad(Math.floor(d / 100), 3)}`, `q${pad(d % 100, 2)}`);
}

function fileOf(i: number): string {
  return path.join(dirOf(i), `item-${pad(i, 7)}.${extOf(i)}`);
}

let cached: Record<Ext, Buffer> | undefined;

/** Text of each kind to cut the files from: 4 MiB each, made once per process. */
function pools(): Record<Ext, Buffer> {
  cached ??= makePools();
  return cached;
}

function makePools(): Record<Ext, Buffer> {
  const r = rng(606);
  const json: string[] = [];
  const cfg: string[] = [];
  const log: string[] = [];
  let n = 0;
  while (n < 4 << 20) {
    const j = JSON.stringify({
      id: between(r, 1, 1e7),
      name: `${word(r)}-${word(r)}`,
      enabled: r() < 0.7,
      tags: [word(r), word(r)],
      updated: 1_600_000_000 + between(r, 0, 1e8),
    });
    const c = `${word(r)}_${word(r)} = ${r() < 0.5 ? between(r, 0, 65535) : `"${word(r)}"`}`;
    const l = `2023-${pad(between(r, 1, 12), 2)}-${pad(between(r, 1, 28), 2)}T${pad(between(r, 0, 23), 2)}:${pad(between(r, 0, 59), 2)}:${pad(between(r, 0, 59), 2)}Z ${r() < 0.9 ? "INFO" : "WARN"} ${word(r)}: ${word(r)} ${word(r)} ${word(r)} took ${between(r, 1, 900)}ms`;
    json.push(j);
    cfg.push(c);
    log.push(l);
    n += j.length;
  }
  const text = Buffer.from(prose(r, 4 << 20));
  return {
    txt: text,
    md: Buffer.from(`# ${word(r)}\n\n${text.toString("latin1").replace(/\n\n/g, "\n\n## section\n\n")}`),
    json: Buffer.from(json.join("\n")),
    cfg: Buffer.from(cfg.join("\n")),
    log: Buffer.from(log.join("\n")),
    bin: keystream(607, 4 << 20),
  };
}

function content(p: Record<Ext, Buffer>, i: number, salt: number): Buffer {
  const pool = p[extOf(i)];
  const size = sizeOf(i, salt);
  const at = Math.floor(unit(i, salt + 100) * (pool.length - size));
  return pool.subarray(at, at + size);
}

const MTIME = 1_600_000_000;

export function generateFiles(root: string, count: number): void {
  const p = pools();
  for (let i = 0; i < count; i++) {
    if (i % 100 === 0) fs.mkdirSync(path.join(root, dirOf(i)), { recursive: true });
    const file = path.join(root, fileOf(i));
    fs.writeFileSync(file, content(p, i, 2));
    fs.utimesSync(file, MTIME + i, MTIME + i);
  }
}

/** The glob `find` looks for: one file's name (its extension left open). */
export function filesFindPattern(count: number): string {
  return `item-${pad(Math.floor(count / 2) + 7, 7)}.*`;
}

/** 1% of the files rewritten (new size and content), 0.5% new files beside them, 0.2% removed. */
export async function mutateFiles(root: string, count: number, m: Mutation): Promise<void> {
  const p = pools();
  const r = rng(909);
  const keep = Math.floor(count / 2) + 7;
  const used = new Set<number>([keep]);
  const choose = () => {
    for (;;) {
      const i = between(r, 0, count - 1);
      if (!used.has(i)) {
        used.add(i);
        return i;
      }
    }
  };
  for (let k = 0; k < Math.round(count * 0.01); k++) {
    const i = choose();
    await m.rewrite(path.join(root, fileOf(i)), content(p, i, 3));
  }
  for (let k = 0; k < Math.round(count * 0.005); k++) {
    const i = choose();
    await m.create(path.join(root, dirOf(i), `new-${pad(i, 7)}.txt`), content(p, i, 4));
  }
  for (let k = 0; k < Math.round(count * 0.002); k++) await m.remove(path.join(root, fileOf(choose())));
}
