import { promises as fs } from "node:fs";
import { generateMixed, MIXED, mutateMixed, scaleMixed } from "./dataset.js";
import { FILE_COUNTS, filesFindPattern, generateFiles, mutateFiles } from "./dataset-files.js";
import { generateMail, mailFindPattern, mailParams, mutateMail } from "./dataset-mail.js";
import { generateZeros, type ZerosCase, zerosCases } from "./dataset-zeros.js";
import type { Mutation } from "./mutation.js";

/** Bump when a generator's output changes: cached datasets made by an older one are remade. */
const GENERATOR = { mixed: 1, mail: 1, files: 1, zeros: 1 };

interface Common {
  /** Section key in docs/benchmarks.md and folder name in the dataset cache. */
  name: string;
  title: string;
  /** What the dataset is (the generated sizes are added when it is reported). */
  describe: string;
  /** Everything the bytes depend on; a cached dataset with another key is remade. */
  key: string;
  generate(root: string): Promise<void>;
}

/** A tree backed up three times (the third after ~1% changes), restored, listed, searched, diffed. */
export interface TreeProfile extends Common {
  kind: "tree";
  mutate(root: string, m: Mutation): Promise<void>;
  /** A glob that matches one file's name. */
  findPattern: string;
  /** For the files profiles: how many files, for the growth table. */
  fileCount?: number;
}

/** Single files, each backed up into a fresh repository and restored. */
export interface ZerosProfile extends Common {
  kind: "zeros";
  cases: ZerosCase[];
}

export type BenchProfile = TreeProfile | ZerosProfile;

export const PROFILE_NAMES = ["small", "default", "large", "mail", "files", "zeros"];

/** Section and cache names of a scaled run carry the scale, so they never replace full-size figures. */
export function scaleSuffix(scale: number): string {
  return scale === 1 ? "" : `-x${scale}`;
}

export function profiles(names: string[], scale: number, fileCounts: string[]): BenchProfile[] {
  const out: BenchProfile[] = [];
  for (const n of names) {
    const mixed = MIXED[n];
    if (mixed) {
      const p = scaleMixed(mixed, scale);
      out.push({
        kind: "tree",
        name: `${n}${scaleSuffix(scale)}`,
        title: `${n} (mixed)`,
        describe: `mixed: ${p.mailFiles.toLocaleString("en")} mail-like small files, ${p.bigFiles} × ${p.bigFileMiB} MiB incompressible, ${p.logMiB} MiB of JSON logs, a ${p.dbMiB} MiB paged database file, an exact and a shifted copy of a big file; the change appends to 1% of the mails, rewrites 1 MiB of a big file and adds a log`,
        key: `mixed v${GENERATOR.mixed} ${JSON.stringify(p)}`,
        generate: (root) => generateMixed(root, p),
        mutate: (root, m) => mutateMixed(root, p, m),
        findPattern: "app.db",
      });
    } else if (n === "mail") {
      const p = mailParams(scale);
      out.push({
        kind: "tree",
        name: `mail${scaleSuffix(scale)}`,
        title: "mail store",
        describe: `a Dovecot Maildir++ store: ${p.messages.toLocaleString("en")} RFC 5322 messages of 1–16 KiB (Received chains, DKIM, plain, HTML and base64 attachments, quoted replies) in ${p.folders} folders with cur/new/tmp and dovecot-uidlist; the change is a day of mail: 1% delivered, 0.5% flagged, 0.3% read, 0.2% expunged`,
        key: `mail v${GENERATOR.mail} ${JSON.stringify(p)}`,
        generate: async (root) => generateMail(root, p),
        mutate: (root, m) => mutateMail(root, p, m),
        findPattern: mailFindPattern(p),
      });
    } else if (n === "files") {
      for (const c of fileCounts) {
        const count = Math.max(100, Math.round(FILE_COUNTS[c]! * scale));
        out.push({
          kind: "tree",
          name: `files-${c}${scaleSuffix(scale)}`,
          title: `${count.toLocaleString("en")} small files`,
          describe: `${count.toLocaleString("en")} files of 4 B–8 KiB (≈1 KiB on average; text, JSON, config, log, markdown, 5% random), 100 per folder; the change rewrites 1%, adds 0.5%, removes 0.2%`,
          key: `files v${GENERATOR.files} ${count}`,
          generate: async (root) => generateFiles(root, count),
          mutate: (root, m) => mutateFiles(root, count, m),
          findPattern: filesFindPattern(count),
          fileCount: count,
        });
      }
    } else if (n === "zeros") {
      const cases = zerosCases(scale);
      out.push({
        kind: "zeros",
        name: `zeros${scaleSuffix(scale)}`,
        title: "zeroes, holes and random bytes",
        describe: `one file per repository: ${cases.map((c) => c.label).join(", ")}`,
        key: `zeros v${GENERATOR.zeros} ${cases.map((c) => c.bytes).join(",")}`,
        generate: async (root) => generateZeros(root, cases),
        cases,
      });
    } else {
      throw new Error(`unknown profile ${n}; use ${PROFILE_NAMES.join(", ")}`);
    }
  }
  return out;
}

export async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}
