import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

/** What a tree holds, and one hash that changes when any of it does. */
export interface TreeSummary {
  /** SHA-256 over every entry's relative path, type and permission bits, and for files mtime
   * (whole seconds), size and content. Not owners (we restore as root anyway), not holes. */
  hash: string;
  files: number;
  dirs: number;
  /** Sum of file sizes. */
  bytes: number;
  /** What the files take on disk (st_blocks): shows whether runs of zeroes became holes. */
  allocated: number;
}

const buffer = Buffer.alloc(1 << 20);

/**
 * Reads the whole tree (synchronously: for a million small files the blocking calls are much
 * faster than promises, and the harness has nothing else to do meanwhile). Reading every byte
 * is also how the warm runs fill the page cache.
 */
export function summarize(root: string): TreeSummary {
  const h = createHash("sha256");
  const s: TreeSummary = { hash: "", files: 0, dirs: 0, bytes: 0, allocated: 0 };
  const walk = (dir: string, rel: string) => {
    const names = fs.readdirSync(dir).sort();
    for (const name of names) {
      const p = path.join(dir, name);
      const r = `${rel}/${name}`;
      const st = fs.lstatSync(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        s.dirs++;
        // Not a folder's mtime: adding and removing files (the changes, and undoing them) moves it.
        h.update(`d\0${r}\0${mode}\n`);
        walk(p, r);
      } else if (st.isSymbolicLink()) {
        h.update(`l\0${r}\0${fs.readlinkSync(p)}\n`);
      } else if (st.isFile()) {
        s.files++;
        s.bytes += st.size;
        s.allocated += st.blocks * 512;
        h.update(`f\0${r}\0${mode}\0${Math.floor(st.mtimeMs / 1000)}\0${st.size}\0${fileHash(p)}\n`);
      } else h.update(`o\0${r}\n`);
    }
  };
  walk(root, "");
  s.hash = h.digest("hex");
  return s;
}

function fileHash(file: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      h.update(buffer.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

/** Bytes of the files under a folder (a repository's size). */
export function sizeOf(root: string): number {
  let total = 0;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) total += fs.statSync(p).size;
    }
  };
  walk(root);
  return total;
}
