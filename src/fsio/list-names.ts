import { promises as fs } from "node:fs";
import { fsPath, nameFromBytes } from "../core/names.js";

/**
 * A folder's entries, exactly, in the form of core/names.ts (names need not be UTF-8). Listed as
 * strings first (decoded in C++, measured cheaper than a Buffer per name); a name that is not
 * UTF-8 decodes with U+FFFD in it, and only then is the folder listed again as bytes.
 */
export async function listNames(p: string): Promise<string[]> {
  const names = await fs.readdir(fsPath(p));
  if (!names.some((n) => n.includes("\uFFFD"))) return names;
  return (await fs.readdir(fsPath(p), { encoding: "buffer" })).map(nameFromBytes);
}
