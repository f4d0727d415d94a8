import { promises as fs } from "node:fs";

/** When changed files say they were changed: fixed, so that the changed tree is the same every pair. */
export const CHANGE_TIME = 1_750_000_000;

type Undo =
  | { kind: "restore"; file: string; data: Buffer; mtime: Date }
  | { kind: "unpatch"; file: string; offset: number; data: Buffer; mtime: Date }
  | { kind: "delete"; file: string }
  | { kind: "rename"; from: string; to: string };

/**
 * Changes to a cached dataset that can be taken back, so that one generated tree serves every
 * pair and every run. A marker file says "changed" from the first change until `undo()` ends:
 * if a run dies in between, the next run finds the marker and generates the dataset again.
 */
export class Mutation {
  private readonly log: Undo[] = [];
  private marked = false;
  /** Files that differ from the unchanged tree (created, removed, changed, both names of a rename). */
  readonly changed = new Set<string>();

  constructor(private readonly marker: string) {}

  private async mark(): Promise<void> {
    if (this.marked) return;
    await fs.writeFile(this.marker, "a benchmark changed this dataset and has not undone it yet\n");
    this.marked = true;
  }

  /** Replaces a file's content, and gives it CHANGE_TIME as mtime. */
  async rewrite(file: string, data: string | Buffer): Promise<void> {
    await this.mark();
    const st = await fs.stat(file);
    this.log.push({ kind: "restore", file, data: await fs.readFile(file), mtime: st.mtime });
    await fs.writeFile(file, data);
    await setTime(file, st.mtime);
    this.changed.add(file);
  }

  async append(file: string, data: string): Promise<void> {
    await this.mark();
    const st = await fs.stat(file);
    this.log.push({ kind: "restore", file, data: await fs.readFile(file), mtime: st.mtime });
    await fs.appendFile(file, data);
    await setTime(file, st.mtime);
    this.changed.add(file);
  }

  /** Overwrites `data.length` bytes at `offset` (a database page, a block of a disk image). */
  async patch(file: string, offset: number, data: Buffer): Promise<void> {
    await this.mark();
    const st = await fs.stat(file);
    const fh = await fs.open(file, "r+");
    try {
      const old = Buffer.alloc(data.length);
      await fh.read(old, 0, data.length, offset);
      this.log.push({ kind: "unpatch", file, offset, data: old, mtime: st.mtime });
      await fh.write(data, 0, data.length, offset);
    } finally {
      await fh.close();
    }
    await setTime(file, st.mtime);
    this.changed.add(file);
  }

  /** A new file (its folder must exist). */
  async create(file: string, data: string | Buffer, mtime = CHANGE_TIME): Promise<void> {
    await this.mark();
    this.log.push({ kind: "delete", file });
    await fs.writeFile(file, data, { flag: "wx" });
    await fs.utimes(file, mtime, mtime);
    this.changed.add(file);
  }

  async remove(file: string): Promise<void> {
    await this.mark();
    const st = await fs.stat(file);
    this.log.push({ kind: "restore", file, data: await fs.readFile(file), mtime: st.mtime });
    await fs.rm(file);
    this.changed.add(file);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.mark();
    this.log.push({ kind: "rename", from, to });
    await fs.rename(from, to);
    this.changed.add(from).add(to);
  }

  /** Takes every change back, newest first, then removes the marker. */
  async undo(): Promise<void> {
    for (const u of this.log.reverse()) {
      if (u.kind === "delete") await fs.rm(u.file, { force: true });
      else if (u.kind === "rename") await fs.rename(u.to, u.from);
      else if (u.kind === "restore") {
        await fs.writeFile(u.file, u.data);
        await fs.utimes(u.file, u.mtime, u.mtime);
      } else {
        const fh = await fs.open(u.file, "r+");
        try {
          await fh.write(u.data, 0, u.data.length, u.offset);
        } finally {
          await fh.close();
        }
        await fs.utimes(u.file, u.mtime, u.mtime);
      }
    }
    this.log.length = 0;
    this.changed.clear();
    if (this.marked) await fs.rm(this.marker, { force: true });
    this.marked = false;
  }
}

/** CHANGE_TIME, or one second later if the file already had it (a change must show in mtime). */
async function setTime(file: string, old: Date): Promise<void> {
  const t = Math.floor(old.getTime() / 1000) === CHANGE_TIME ? CHANGE_TIME + 1 : CHANGE_TIME;
  await fs.utimes(file, t, t);
}
