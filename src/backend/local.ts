import { randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { type Backend, type GetOptions, type ObjectInfo, type ObjectWriter, objectName } from "./backend.js";
import { storageError } from "./storage-error.js";

export interface LocalBackendOptions {
  /** Folder that holds the repository. */
  path: string;
  /** fsync files and folders after writing (default true). Tests may turn it off for speed. */
  fsync?: boolean;
}

/** Temporary files carry this prefix; `list` skips them and prune removes stale ones. */
export const TEMP_PREFIX = ".tmp-";

/** A folder's entries; none when it is gone (removed meanwhile, or never made). */
async function entriesOf(dir: string): Promise<import("node:fs").Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw storageError(e, dir);
  }
}

/** A repository in a local folder. Puts write a temporary file, fsync it, rename it into place
 * and fsync the folder, so a crash leaves either nothing or the whole object. Streamed objects
 * (`openWriter`) are the same temporary file written in pieces. */
export function localBackend(options: LocalBackendOptions): Backend {
  const root = path.resolve(options.path);
  const doSync = options.fsync ?? true;
  const full = (name: string) => path.join(root, objectName(name));
  const madeDirs = new Set<string>();

  async function ensureDir(dir: string): Promise<void> {
    if (madeDirs.has(dir)) return;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    madeDirs.add(dir);
  }

  async function syncDir(dir: string): Promise<void> {
    if (!doSync) return;
    const fh = await fs.open(dir, constants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  return {
    location: root,
    capabilities: { retention: false, appendOnly: false },

    async exists() {
      try {
        return (await fs.stat(root)).isDirectory();
      } catch {
        return false;
      }
    },

    async create() {
      try {
        await fs.mkdir(root, { recursive: true, mode: 0o700 });
      } catch (e) {
        throw storageError(e, root);
      }
    },

    async get(name: string, opts?: GetOptions) {
      const file = full(name);
      try {
        if (opts?.offset === undefined && opts?.length === undefined) return await fs.readFile(file);
        const fh = await fs.open(file, "r");
        try {
          const offset = opts.offset ?? 0;
          // From at or past the end, a read is empty (not a negative-sized buffer).
          const length = opts.length ?? Math.max(0, (await fh.stat()).size - offset);
          const buf =
            opts.into && opts.length !== undefined && opts.into.length >= length
              ? opts.into.subarray(0, length)
              : Buffer.allocUnsafe(length);
          let done = 0;
          while (done < length) {
            const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
            if (bytesRead === 0) break;
            done += bytesRead;
          }
          return done === length ? buf : buf.subarray(0, done);
        } finally {
          await fh.close();
        }
      } catch (e) {
        throw storageError(e, `${root}/${name}`);
      }
    },

    async stat(name: string) {
      try {
        const st = await fs.stat(full(name));
        return { name, size: st.size };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw storageError(e, `${root}/${name}`);
      }
    },

    async put(name: string, data: Buffer) {
      const file = full(name);
      const dir = path.dirname(file);
      const tmp = path.join(dir, `${TEMP_PREFIX}${randomBytes(8).toString("hex")}`);
      try {
        await ensureDir(dir);
        const fh = await fs.open(tmp, "wx", 0o600);
        try {
          await fh.writeFile(data);
          if (doSync) await fh.sync();
        } finally {
          await fh.close();
        }
        await fs.rename(tmp, file);
        await syncDir(dir);
      } catch (e) {
        await fs.rm(tmp, { force: true }).catch(() => {});
        throw storageError(e, `${root}/${name}`);
      }
    },

    async openWriter(folder: string): Promise<ObjectWriter> {
      const dir = full(folder);
      const tmp = path.join(dir, `${TEMP_PREFIX}${randomBytes(8).toString("hex")}`);
      let fh: import("node:fs/promises").FileHandle | undefined;
      try {
        await ensureDir(dir);
        fh = await fs.open(tmp, "wx", 0o600);
      } catch (e) {
        throw storageError(e, `${root}/${folder}`);
      }
      const file = fh;
      let written = 0;
      let open = true;
      const drop = async () => {
        if (open) await file.close().catch(() => {});
        open = false;
        await fs.rm(tmp, { force: true }).catch(() => {});
      };
      return {
        async write(data: Uint8Array) {
          try {
            for (let done = 0; done < data.length; ) {
              const { bytesWritten } = await file.write(data, done, data.length - done, written + done);
              done += bytesWritten;
            }
            written += data.length;
          } catch (e) {
            await drop();
            throw storageError(e, `${root}/${folder}`);
          }
        },
        async commit(name: string) {
          const target = full(name);
          if (!target.startsWith(dir + path.sep)) {
            await drop();
            throw new Error(`${name} is not below ${folder}`);
          }
          try {
            await ensureDir(path.dirname(target));
            if (doSync) await file.sync();
            open = false;
            await file.close();
            await fs.rename(tmp, target);
            await syncDir(path.dirname(target));
          } catch (e) {
            await drop();
            throw storageError(e, `${root}/${name}`);
          }
        },
        abort: drop,
      };
    },

    async removeTemporaries(before: number) {
      const removed = { files: 0, bytes: 0 };
      const walk = async (dir: string): Promise<void> => {
        for (const ent of await entriesOf(dir)) {
          const p = path.join(dir, ent.name);
          if (ent.isDirectory()) await walk(p);
          else if (ent.isFile() && ent.name.startsWith(TEMP_PREFIX)) {
            const st = await fs.stat(p).catch(() => undefined);
            if (!st || st.mtimeMs >= before) continue;
            await fs.rm(p, { force: true });
            removed.files++;
            removed.bytes += st.size;
          }
        }
      };
      await walk(root);
      return removed;
    },

    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      // Walk folders below the prefix; names are short and few levels deep (data/xx/id).
      const start = path.join(root, prefix);
      const stack: string[] = [];
      try {
        const st = await fs.stat(start);
        if (!st.isDirectory()) return;
        stack.push(start);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
        throw storageError(e, start);
      }
      while (stack.length > 0) {
        const dir = stack.pop()!;
        const entries = await entriesOf(dir);
        entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        for (const ent of entries) {
          if (ent.name.startsWith(TEMP_PREFIX)) continue;
          const p = path.join(dir, ent.name);
          if (ent.isDirectory()) {
            stack.push(p);
          } else if (ent.isFile()) {
            const st = await fs.stat(p).catch(() => undefined);
            if (st) yield { name: path.relative(root, p).split(path.sep).join("/"), size: st.size };
          }
        }
      }
    },

    async delete(name: string) {
      try {
        await fs.rm(full(name));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
        throw storageError(e, `${root}/${name}`);
      }
    },

    async close() {},
  };
}
