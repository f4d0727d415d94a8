import fs from "node:fs";
import path from "node:path";
import { keystream } from "./random.js";

/**
 * Three single-file folders, each backed up into its own repository and restored: a file of
 * zeroes written out (1 GiB), a sparse file that is one hole (2 GiB, `truncate`), and random
 * bytes (1 GiB) as the incompressible, undeduplicable control.
 */
export interface ZerosCase {
  /** Folder under the dataset root. */
  folder: string;
  label: string;
  bytes: number;
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;

export function zerosCases(scale: number): ZerosCase[] {
  const size = (b: number) => Math.max(MiB, Math.round((b * scale) / MiB) * MiB);
  const label = (b: number) => (b >= GiB ? `${+(b / GiB).toFixed(2)} GiB` : `${+(b / MiB).toFixed(0)} MiB`);
  const zero = size(GiB);
  const sparse = size(2 * GiB);
  const random = size(GiB);
  return [
    { folder: "zeros", label: `${label(zero)} of zeroes`, bytes: zero },
    { folder: "sparse", label: `${label(sparse)} sparse`, bytes: sparse },
    { folder: "random", label: `${label(random)} random`, bytes: random },
  ];
}

const MTIME = 1_700_000_000;

export function generateZeros(root: string, cases: ZerosCase[]): void {
  const [zero, sparse, random] = cases as [ZerosCase, ZerosCase, ZerosCase];
  for (const c of cases) fs.mkdirSync(path.join(root, c.folder), { recursive: true });
  const write = (file: string, bytes: number, block: (i: number) => Buffer) => {
    const fd = fs.openSync(file, "w");
    try {
      for (let i = 0; i * MiB < bytes; i++) fs.writeSync(fd, block(i));
    } finally {
      fs.closeSync(fd);
    }
    fs.utimesSync(file, MTIME, MTIME);
  };
  const zeros = Buffer.alloc(MiB);
  write(path.join(root, zero.folder, "zeros.bin"), zero.bytes, () => zeros);
  const sparseFile = path.join(root, sparse.folder, "sparse.img");
  fs.closeSync(fs.openSync(sparseFile, "w"));
  fs.truncateSync(sparseFile, sparse.bytes);
  fs.utimesSync(sparseFile, MTIME, MTIME);
  write(path.join(root, random.folder, "random.bin"), random.bytes, (i) => keystream(50_000 + i, MiB));
}
