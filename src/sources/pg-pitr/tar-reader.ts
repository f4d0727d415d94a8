import { CorruptionError } from "../../core/errors.js";

/**
 * A small streaming reader of POSIX tar (ustar, pax extended headers, GNU long names): what
 * `pg_basebackup -Ft` writes. Nothing is buffered beyond one header; file bytes are handed to
 * the handler as they arrive (slices of the input: copy them to keep them).
 */
export interface TarEntry {
  /** Path inside the archive, without a leading `./` or a trailing slash. */
  name: string;
  type: "file" | "dir" | "symlink" | "hardlink";
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  size: number;
  linkname: string;
}

export interface TarHandler {
  entry(e: TarEntry): Promise<void> | void;
  /** Bytes of the current file entry, in order. */
  data(piece: Buffer): Promise<void> | void;
  /** The current entry is complete (called for every entry, also empty ones). */
  endEntry(): Promise<void> | void;
}

const BLOCK = 512;
/** pax and GNU long-name bodies are held in memory whole; real ones are a few KiB. */
const MAX_META = 1024 * 1024;

function field(h: Buffer, off: number, len: number): string {
  const raw = h.subarray(off, off + len);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? len : end).toString("utf8");
}

function numberField(h: Buffer, off: number, len: number, what: string): number {
  if ((h[off]! & 0x80) !== 0) {
    // base-256: big-endian, the top bit of the first byte is the marker
    let n = h[off]! & 0x7f;
    for (let i = 1; i < len; i++) n = n * 256 + h[off + i]!;
    if (!Number.isSafeInteger(n)) throw new CorruptionError(what, "base-256 field out of range");
    return n;
  }
  const s = h
    .subarray(off, off + len)
    .toString("latin1")
    .replace(/[\0 ]+$/g, "")
    .replace(/^[\0 ]+/, "");
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new CorruptionError(what, `bad octal field ${JSON.stringify(s)}`);
  return Number.parseInt(s, 8);
}

function checksumOk(h: Buffer, what: string): boolean {
  const want = numberField(h, 148, 8, what);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === want;
}

function parsePax(body: Buffer, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < body.length) {
    const sp = body.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(body.subarray(off, sp).toString("latin1"));
    if (!Number.isInteger(len) || len <= 0 || off + len > body.length)
      throw new CorruptionError(what, "bad pax record");
    const rec = body.subarray(sp + 1, off + len - 1).toString("utf8");
    const eq = rec.indexOf("=");
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    off += len;
  }
  return out;
}

/** Reads a tar stream to its end-of-archive marker; a truncated archive is an error. */
export async function readTar(
  source: AsyncIterable<Buffer>,
  handler: TarHandler,
  what = "tar archive",
): Promise<void> {
  const parser = new TarParser(handler, what);
  for await (const chunk of source) await parser.push(chunk);
  parser.end();
}

/** The same, fed piece by piece (to look into a stream that goes elsewhere). */
export class TarParser {
  private pending: Buffer = Buffer.alloc(0);
  private state: "header" | "body" | "meta" | "pad" | "end" = "header";
  private left = 0;
  private pad = 0;
  private metaType = "";
  private metaParts: Buffer[] = [];
  private over: { path?: string; linkpath?: string; size?: number } = {};

  constructor(
    private readonly handler: TarHandler,
    private readonly what = "tar archive",
  ) {}

  get finished(): boolean {
    return this.state === "end";
  }

  private async header(h: Buffer): Promise<void> {
    const what = this.what;
    const padFor = (n: number) => (BLOCK - (n % BLOCK)) % BLOCK;
    if (h.every((b) => b === 0)) {
      this.state = "end";
      return;
    }
    if (!checksumOk(h, what)) throw new CorruptionError(what, "tar header checksum mismatch");
    const flag = String.fromCharCode(h[156]!);
    let size = numberField(h, 124, 12, what);
    if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
      // Refused before buffering: a damaged size would make us hold the rest of the stream.
      if (size > MAX_META)
        throw new CorruptionError(what, `extended header (type ${flag}) of ${size} bytes is too large`);
      this.metaType = flag;
      this.metaParts = [];
      this.left = size;
      this.pad = padFor(size);
      this.state = this.left > 0 ? "meta" : this.pad > 0 ? "pad" : "header";
      return;
    }
    let name = field(h, 0, 100);
    if (field(h, 257, 5) === "ustar") {
      const prefix = field(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    let linkname = field(h, 157, 100);
    const over = this.over;
    if (over.path !== undefined) name = over.path;
    if (over.linkpath !== undefined) linkname = over.linkpath;
    if (over.size !== undefined) size = over.size;
    this.over = {};
    const type =
      flag === "0" || flag === "\0" || flag === "7"
        ? "file"
        : flag === "5"
          ? "dir"
          : flag === "2"
            ? "symlink"
            : flag === "1"
              ? "hardlink"
              : undefined;
    if (!type)
      throw new CorruptionError(what, `unsupported tar entry type ${JSON.stringify(flag)} for ${name}`);
    name = name.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
    const entrySize = type === "file" ? size : 0;
    await this.handler.entry({
      name,
      type,
      mode: numberField(h, 100, 8, what) & 0o7777,
      uid: numberField(h, 108, 8, what),
      gid: numberField(h, 116, 8, what),
      mtime: numberField(h, 136, 12, what),
      size: entrySize,
      linkname,
    });
    this.left = entrySize;
    this.pad = padFor(entrySize);
    if (this.left === 0) {
      await this.handler.endEntry();
      this.state = this.pad > 0 ? "pad" : "header";
    } else this.state = "body";
  }

  private endMeta(): void {
    const body = Buffer.concat(this.metaParts);
    this.metaParts = [];
    if (this.metaType === "x") {
      const pax = parsePax(body, this.what);
      if (pax.path !== undefined) this.over.path = pax.path;
      if (pax.linkpath !== undefined) this.over.linkpath = pax.linkpath;
      if (pax.size !== undefined) {
        // A negative, fractional or non-numeric size would derail the block arithmetic.
        const size = /^[0-9]{1,15}$/.test(pax.size) ? Number(pax.size) : Number.NaN;
        if (!Number.isSafeInteger(size))
          throw new CorruptionError(this.what, `bad pax size ${JSON.stringify(pax.size.slice(0, 40))}`);
        this.over.size = size;
      }
    } else if (this.metaType === "L") this.over.path = field(body, 0, body.length);
    else if (this.metaType === "K") this.over.linkpath = field(body, 0, body.length);
  }

  async push(chunk: Buffer): Promise<void> {
    const data: Buffer = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    let off = 0;
    while (off < data.length && this.state !== "end") {
      if (this.state === "body" || this.state === "meta") {
        const n = Math.min(this.left, data.length - off);
        const piece = data.subarray(off, off + n);
        if (this.state === "body") await this.handler.data(piece);
        else this.metaParts.push(Buffer.from(piece));
        off += n;
        this.left -= n;
        if (this.left === 0) {
          if (this.state === "body") await this.handler.endEntry();
          else this.endMeta();
          this.state = this.pad > 0 ? "pad" : "header";
        }
      } else if (this.state === "pad") {
        const n = Math.min(this.pad, data.length - off);
        off += n;
        this.pad -= n;
        if (this.pad === 0) this.state = "header";
      } else {
        if (data.length - off < BLOCK) {
          this.pending = Buffer.from(data.subarray(off));
          break;
        }
        const h = data.subarray(off, off + BLOCK);
        off += BLOCK;
        await this.header(h);
      }
    }
  }

  /** Throws unless the end-of-archive marker was seen. */
  end(): void {
    if (this.state !== "end")
      throw new CorruptionError(this.what, "the tar archive is truncated (no end-of-archive marker)");
  }
}
