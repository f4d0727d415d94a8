import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { LifeboatError } from "../../core/errors.js";
import type { TreeSource } from "../../snapshot/source.js";
import { checkSourcePaths, filesSource } from "../files/files-source.js";

/**
 * A folder per account (`/srv/mail/ann`): the account's snapshot is its folder, through the
 * files source (so unchanged files come from the account's parent snapshot).
 */
export async function folderAccountSource(dir: string, excludes: string[] = []): Promise<TreeSource> {
  const [abs] = await checkSourcePaths([dir]);
  return filesSource([abs!], { excludes });
}

/**
 * The folder's "mtime tree": a digest of every entry's relative path, type, size, mtime and
 * ctime, from stat calls alone (no file is read). Equal to the one stored with the account's
 * last snapshot: nothing changed, so no snapshot is needed.
 */
export async function folderFingerprint(dir: string): Promise<string> {
  const h = createHash("sha256");
  const walk = async (rel: string): Promise<void> => {
    const abs = path.join(dir, rel);
    let names: string[];
    try {
      names = (await fs.readdir(abs)).sort();
    } catch (e) {
      if (rel === "")
        throw new LifeboatError(
          "SOURCE_UNREADABLE",
          `account folder ${dir} cannot be read: ${(e as Error).message}`,
          "check that the folder exists and is readable",
        );
      throw e;
    }
    for (const n of names) {
      const r = rel === "" ? n : `${rel}/${n}`;
      const st = await fs.lstat(path.join(dir, r), { bigint: true });
      h.update(`${r}\0${st.mode}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}\0${st.ino}\n`);
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk("");
  return `mtime:${h.digest("hex").slice(0, 32)}`;
}
