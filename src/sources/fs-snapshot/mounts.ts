import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { nameFromBytes } from "../../core/names.js";

/**
 * Mount points from /proc/self/mountinfo (field 5, with the kernel's octal escapes for space,
 * tab, newline and backslash undone), in the form of core/names.ts. Empty where there is no
 * /proc (not Linux).
 */
export function parseMountPoints(mountinfo: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split("\n")) {
    const field = line.split(" ")[4];
    if (!field) continue;
    const bytes: number[] = [];
    const raw = Buffer.from(field, "latin1");
    for (let i = 0; i < raw.length; i++) {
      if (raw[i] === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(field.slice(i + 1, i + 4))) {
        bytes.push(Number.parseInt(field.slice(i + 1, i + 4), 8));
        i += 3;
      } else bytes.push(raw[i]!);
    }
    out.push(nameFromBytes(Buffer.from(bytes)));
  }
  return out;
}

export function mountPoints(): string[] {
  try {
    return parseMountPoints(readFileSync("/proc/self/mountinfo", "latin1"));
  } catch {
    return [];
  }
}

/** Whether `p` is strictly below folder `dir` (both absolute and normalised). */
export const isBelow = (p: string, dir: string): boolean =>
  p !== dir && (dir === "/" ? p.startsWith("/") : p.startsWith(`${dir}/`));

/** Mount points strictly below `dir`, sorted. */
export function mountsBelow(dir: string, all: string[] = mountPoints()): string[] {
  return [...new Set(all.filter((m) => isBelow(m, dir)))].sort();
}

/** Writes out the dirty data of the file systems holding `paths` (`sync -f`, syncfs(2)); a
 * failure only costs a longer freeze. */
export function syncFileSystems(paths: string[]): Promise<void> {
  return new Promise((resolve) => execFile("sync", ["-f", ...paths], () => resolve()));
}
