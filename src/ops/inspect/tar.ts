import { CorruptionError } from "../../core/errors.js";
import { nameToBytes } from "../../core/names.js";

/**
 * A small streaming writer of POSIX tar (ustar headers, pax extended headers where ustar cannot
 * say it: names or link targets over 100 bytes or not ASCII, ids or sizes too large for the
 * octal fields, extended attributes). Output goes through `write`, which may apply
 * backpressure; nothing is held in memory beyond one header.
 *
 * Names are bytes: a name that is not UTF-8 (core/names.ts) goes into the pax `path` record as
 * its bytes, as GNU tar writes it (GNU tar warns about POSIX's `hdrcharset=BINARY`, so it is not
 * written); GNU tar and bsdtar extract the same bytes. Extended attributes are
 * `SCHILY.xattr.<name>` records (GNU tar `--xattrs`, bsdtar).
 */
export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "fifo" | "chardev" | "blockdev";

export interface TarHeader {
  /** Path inside the archive, without a leading slash; folders without a trailing one (in the
   * form of core/names.ts: bytes that are not UTF-8 are kept). */
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
  /** Device nodes: major and minor numbers. */
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, values as bytes. */
  xattrs?: { name: string; value: Buffer }[];
}

const BLOCK = 512;
/** GNU tar writes whole records of 20 blocks; readers accept either, we match it. */
const RECORD = 20 * BLOCK;
const typeFlag: Record<TarEntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  chardev: "3",
  blockdev: "4",
  dir: "5",
  fifo: "6",
};

/** Largest value an octal field of `width` bytes holds (width-1 digits and a NUL). */
const octalMax = (width: number) => 8 ** (width - 1) - 1;

function putString(buf: Buffer, off: number, width: number, s: string): void {
  buf.write(s, off, width, "latin1");
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
  return paxRecordBytes(Buffer.from(key, "utf8"), Buffer.from(value, "utf8")).toString("utf8");
}

/** A pax record of bytes (keys and values that need not be UTF-8). */
export function paxRecordBytes(key: Buffer, value: Buffer): Buffer {
  const bodyLen = key.length + value.length + 3; // " ", "=", "\n"
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
  return Buffer.concat([Buffer.from(`${len} `), key, Buffer.from("="), value, Buffer.from("\n")]);
}

const fitsUstar = (b: Buffer, max: number) => b.length <= max && b.every((x) => x >= 0x20 && x <= 0x7e);

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
  if (h.devmajor !== undefined) putOctal(b, 329, 8, Math.min(h.devmajor, octalMax(8)));
  if (h.devminor !== undefined) putOctal(b, 337, 8, Math.min(h.devminor, octalMax(8)));
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
    const nameStr = h.type === "dir" ? `${h.name.replace(/\/+$/, "")}/` : h.name;
    const name = nameToBytes(nameStr);
    const linkname = nameToBytes(h.linkname ?? "");
    const size = h.type === "file" ? (h.size ?? 0) : 0;
    const pax: Buffer[] = [];
    const rec = (key: string, value: string | Buffer) =>
      pax.push(
        paxRecordBytes(Buffer.from(key, "utf8"), typeof value === "string" ? Buffer.from(value) : value),
      );
    if (!fitsUstar(name, 100)) rec("path", name);
    if (!fitsUstar(linkname, 100)) rec("linkpath", linkname);
    if (size > octalMax(12)) rec("size", String(size));
    if (h.uid > octalMax(8)) rec("uid", String(h.uid));
    if (h.gid > octalMax(8)) rec("gid", String(h.gid));
    if (h.mtime < 0 || h.mtime > octalMax(12)) rec("mtime", String(Math.floor(h.mtime)));
    for (const x of h.xattrs ?? [])
      pax.push(paxRecordBytes(Buffer.concat([Buffer.from("SCHILY.xattr."), nameToBytes(x.name)]), x.value));
    if (pax.length > 0) {
      const body = Buffer.concat(pax);
      const paxName = `PaxHeaders/${name
        .subarray(-80)
        .toString("latin1")
        .replace(/[^\x20-\x7e]/g, "_")}`;
      await this.out(header({ ...h, mode: 0o644 }, paxName, "", body.length, "x"));
      await this.out(body);
      await this.pad();
    }
    // The ustar fields keep an ASCII approximation; pax-aware readers use the records above.
    const ascii = (b: Buffer) =>
      b
        .subarray(0, 100)
        .toString("latin1")
        .replace(/[^\x20-\x7e]/g, "_");
    await this.out(header(h, ascii(name), ascii(linkname), size, typeFlag[h.type]));
  }

  /** A FIFO or a device node (`devmajor`/`devminor` for devices). */
  async addSpecial(h: Omit<TarHeader, "type">, type: "fifo" | "chardev" | "blockdev"): Promise<void> {
    await this.writeHeader({ ...h, type });
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
