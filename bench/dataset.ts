import { promises as fs } from "node:fs";
import path from "node:path";
import type { Mutation } from "./mutation.js";
import { keystream, rng, text } from "./random.js";

/**
 * The mixed dataset (profiles small, default, large): a little of everything lifeboat backs up,
 * a mail store (many small text files), large incompressible files, JSON logs, a database-like
 * file of fixed-size pages, and duplicated and shifted copies. Same profile → same bytes on
 * every machine.
 */
export interface MixedProfile {
  name: string;
  mailFiles: number;
  bigFiles: number;
  bigFileMiB: number;
  logMiB: number;
  dbMiB: number;
}

export const MIXED: Record<string, MixedProfile> = {
  small: { name: "small", mailFiles: 2000, bigFiles: 1, bigFileMiB: 16, logMiB: 8, dbMiB: 8 },
  default: { name: "default", mailFiles: 10000, bigFiles: 3, bigFileMiB: 40, logMiB: 60, dbMiB: 32 },
  large: { name: "large", mailFiles: 50000, bigFiles: 8, bigFileMiB: 100, logMiB: 300, dbMiB: 256 },
};

/** Scales every count and size (at least one of each; 1 gives the profile as listed). */
export function scaleMixed(p: MixedProfile, s: number): MixedProfile {
  const n = (x: number) => Math.max(1, Math.round(x * s));
  return {
    name: p.name,
    mailFiles: Math.max(20, Math.round(p.mailFiles * s)),
    bigFiles: n(p.bigFiles),
    bigFileMiB: n(p.bigFileMiB),
    logMiB: n(p.logMiB),
    dbMiB: n(p.dbMiB),
  };
}

async function writeBig(file: string, seed: number, mib: number): Promise<void> {
  const fh = await fs.open(file, "w");
  try {
    for (let i = 0; i < mib; i++) await fh.write(keystream(seed * 100_000 + i, 1 << 20));
  } finally {
    await fh.close();
  }
}

export async function generateMixed(root: string, p: MixedProfile): Promise<void> {
  await fs.rm(root, { recursive: true, force: true });
  const r = rng(42);
  for (let i = 0; i < p.mailFiles; i++) {
    const dir = path.join(root, "mail", `folder${i % 20}`, "cur");
    if (i < 20) await fs.mkdir(dir, { recursive: true });
    const body = `From: user${i % 97}@example.org\nTo: me@example.org\nSubject: message ${i}\nMessage-ID: <${i}@example.org>\n\n${text(r, 1000 + Math.floor(r() * 8000))}\n`;
    await fs.writeFile(path.join(dir, `${1700000000 + i}.M${i}P1.host:2,S`), body);
  }
  await fs.mkdir(path.join(root, "big"), { recursive: true });
  for (let i = 0; i < p.bigFiles; i++)
    await writeBig(path.join(root, "big", `blob${i}.bin`), i + 1, p.bigFileMiB);
  await fs.mkdir(path.join(root, "logs"), { recursive: true });
  {
    const fh = await fs.open(path.join(root, "logs", "app.jsonl"), "w");
    const lr = rng(7);
    let written = 0;
    let n = 0;
    while (written < p.logMiB << 20) {
      const lines: string[] = [];
      for (let j = 0; j < 2000; j++, n++) {
        lines.push(
          JSON.stringify({
            ts: 1700000000000 + n * 37,
            level: lr() < 0.9 ? "info" : "warn",
            user: `u${Math.floor(lr() * 5000)}`,
            path: `/api/v1/items/${Math.floor(lr() * 100000)}`,
            ms: Math.floor(lr() * 900),
          }),
        );
      }
      const chunk = `${lines.join("\n")}\n`;
      await fh.write(chunk);
      written += chunk.length;
    }
    await fh.close();
  }
  // A database-like file: 4 KiB pages, each mostly structured rows with some random bytes.
  await fs.mkdir(path.join(root, "db"), { recursive: true });
  {
    const fh = await fs.open(path.join(root, "db", "app.db"), "w");
    const dr = rng(9);
    for (let pg = 0; pg < (p.dbMiB << 20) / 4096; pg++) {
      const page = Buffer.alloc(4096);
      page.write(text(dr, 2500), 0, "latin1");
      keystream(pg + 777, 512).copy(page, 3000);
      await fh.write(page);
    }
    await fh.close();
  }
  // Duplicates: an exact copy of a big file and a copy shifted by 100 inserted bytes.
  await fs.mkdir(path.join(root, "copies"), { recursive: true });
  const first = path.join(root, "big", "blob0.bin");
  await fs.copyFile(first, path.join(root, "copies", "blob0-copy.bin"));
  const data = await fs.readFile(first);
  await fs.writeFile(
    path.join(root, "copies", "blob0-shifted.bin"),
    Buffer.concat([Buffer.alloc(100, 0x41), data]),
  );
}

/** Changes about 1% of the data: appends to 1% of mails, rewrites 1 MiB of a big file, adds a log. */
export async function mutateMixed(root: string, p: MixedProfile, m: Mutation): Promise<void> {
  const r = rng(4242);
  for (let i = 0; i < p.mailFiles; i += 100) {
    const f = path.join(root, "mail", `folder${i % 20}`, "cur", `${1700000000 + i}.M${i}P1.host:2,S`);
    await m.append(f, `\n-- edited\n${text(r, 200)}\n`);
  }
  await m.patch(path.join(root, "big", "blob0.bin"), (p.bigFileMiB >> 1) << 20, keystream(999, 1 << 20));
  await m.create(path.join(root, "logs", "new.jsonl"), text(r, Math.floor((p.logMiB << 20) / 100)));
}
