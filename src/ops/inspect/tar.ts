import { CorruptionError } from "../../core/errors.js";

/**
 * A small streaming writer of POSIX tar (ustar headers, pax extended headers where ustar cannot
 * say it: names or link targets over 100 bytes or not ASCII, ids or sizes too large for the
 * octal fields). Output goes through `write`, which may apply backpressure; nothing is held in
 * memory beyond one header.
 */
export type TarEntryType = "file" | "dir" | "symlink" | "hardlink";

export interface TarHeader {
  /** Path inside the archive, without a leading slash; folders without a trailing one. */
  name: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Files: the byte count that follows. */
  size?: number;
  /** Symlinks: the target; hard links: the archive path of the first entry. */
  linkname?: string;
}

const BLOCK = 512;
/** GNU tar writes whole records of 20 blocks; readers accept either, we match it. */
const RECORD = 20 * BLOCK;
const typeFlag: Record<TarEntryType, string> = { file: "0", hardlink: "1", symlink: "2", dir: "5" };

/** Largest value an octal field of `width` bytes holds (width-1 digits and a NUL). */
const octalMax = (width: number) => 8 ** (width - 1) - 1;

function putString(buf: Buffer, off: number, width: number, s: string): void {
  buf.write(s, off, width, "utf8");
}

function putOctal(buf: Buffer, off: number, width: number, n: number): void {
  buf.write(
    `${Math.max(0, Math.floor(n))
      .toString(8)
      .padStart(width - 1, "0")}\0`,
    off,
    width,
    "ascii",
  );
}

/** A pax record `"<len> key=value\n"` where len counts the whole record, itself included. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
  return `${len}${body}`;
}

const fitsUstar = (s: string, max: number) => Buffer.byteLength(s) <= max && /^[\x20-\x7e]*$/.test(s);

function header(h: TarHeader, name: string, linkname: string, size: number, flag: string): Buffer {
  const b = Buffer.alloc(BLOCK);
  putString(b, 0, 100, name);
  putOctal(b, 100, 8, Math.min(h.mode & 0o7777, octalMax(8)));
  putOctal(b, 108, 8, Math.min(h.uid, octalMax(8)));
  putOctal(b, 116, 8, Math.min(h.gid, octalMax(8)));
  putOctal(b, 124, 12, Math.min(size, octalMax(12)));
  putOctal(b, 136, 12, Math.min(h.mtime, octalMax(12)));
  b.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  b.write(flag, 156, 1, "ascii");
  putString(b, 157, 100, linkname);
  b.write("ustar\u000000", 257, 8, "ascii");
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
  return b;
}

export class TarWriter {
  private written = 0;

  constructor(private readonly write: (chunk: Buffer) => Promise<void>) {}

  private async out(chunk: Buffer): Promise<void> {
    this.written += chunk.length;
    await this.write(chunk);
  }

  private async pad(): Promise<void> {
    const rest = this.written % BLOCK;
    if (rest !== 0) await this.out(Buffer.alloc(BLOCK - rest));
  }

  private async writeHeader(h: TarHeader): Promise<void> {
    const name = h.type === "dir" ? `${h.name.replace(/\/+$/, "")}/` : h.name;
    const linkname = h.linkname ?? "";
    const size = h.type === "file" ? (h.size ?? 0) : 0;
    const pax: string[] = [];
    if (!fitsUstar(name, 100)) pax.push(paxRecord("path", name));
    if (!fitsUstar(linkname, 100)) pax.push(paxRecord("linkpath", linkname));
    if (size > octalMax(12)) pax.push(paxRecord("size", String(size)));
    if (h.uid > octalMax(8)) pax.push(paxRecord("uid", String(h.uid)));
    if (h.gid > octalMax(8)) pax.push(paxRecord("gid", String(h.gid)));
    if (h.mtime < 0 || h.mtime > octalMax(12)) pax.push(paxRecord("mtime", String(Math.floor(h.mtime))));
    if (pax.length > 0) {
      const body = Buffer.from(pax.join(""), "utf8");
      const paxName = `PaxHeaders/${Buffer.from(name)
        .subarray(-80)
        .toString("latin1")
        .replace(/[^\x20-\x7e]/g, "_")}`;
      await this.out(header({ ...h, mode: 0o644 }, paxName, "", body.length, "x"));
      await this.out(body);
      await this.pad();
    }
    // The ustar fields keep an ASCII approximation; pax-aware readers use the records above.
    const ascii = (s: string) =>
      Buffer.from(s)
        .subarray(0, 100)
        .toString("latin1")
        .replace(/[^\x20-\x7e]/g, "_");
    await this.out(header(h, ascii(name), ascii(linkname), size, typeFlag[h.type]));
  }

  async addDir(h: Omit<TarHeader, "type">): Promise<void> {
    await this.writeHeader({ ...h, type: "dir" });
  }

  async addSymlink(h: Omit<TarHeader, "type">, target: string): Promise<void> {
    await this.writeHeader({ ...h, type: "symlink", linkname: target });
  }

  async addHardLink(h: Omit<TarHeader, "type">, first: string): Promise<void> {
    await this.writeHeader({ ...h, type: "hardlink", linkname: first });
  }

  /** Writes a file whose `size` bytes come from `content`; a different count is an error. */
  async addFile(h: Omit<TarHeader, "type">, content: AsyncIterable<Buffer>): Promise<void> {
    const size = h.size ?? 0;
    await this.writeHeader({ ...h, type: "file", size });
    let n = 0;
    for await (const chunk of content) {
      n += chunk.length;
      if (n > size) break;
      await this.out(chunk);
    }
    if (n !== size)
      throw new CorruptionError(
        `file ${h.name}`,
        `content has ${n > size ? "more" : n} bytes, expected ${size}`,
      );
    await this.pad();
  }

  /** The end-of-archive marker (two zero blocks), padded to a whole record. */
  async finish(): Promise<void> {
    await this.out(Buffer.alloc(2 * BLOCK));
    const rest = this.written % RECORD;
    if (rest !== 0) await this.out(Buffer.alloc(RECORD - rest));
  }
}
