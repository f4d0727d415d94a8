import { gearTable } from "../core/chunker.js";
import { blobId } from "../core/crypto.js";
import { BlobType } from "./blob.js";
import { createKeyFile, generateMasterKeys, type KeyFile, type MasterKeys, unwrapKeyFile } from "./keys.js";
import { packKey, readPackHeader } from "./pack.js";
import { type ObjectKindValue, openObject, sealObject } from "./sealed-object.js";

/**
 * The repository's master keys and everything done with them. The keys never leave this
 * object: callers get ids, gear tables, sealed and opened objects, never a key (the parts of
 * `repo/` that hand a key to a worker thread or a pack builder ask for it by purpose).
 * A later write-only key changes what this object can do, in this one place.
 */
export class KeyRing {
  private gear: Uint32Array | undefined;

  private constructor(private readonly keys: MasterKeys) {}

  static generate(): KeyRing {
    return new KeyRing(generateMasterKeys());
  }

  /** The key ring a password opens, or undefined when it does not open this key file. */
  static async unwrap(file: KeyFile, password: string): Promise<KeyRing | undefined> {
    const keys = await unwrapKeyFile(file, password);
    return keys ? new KeyRing(keys) : undefined;
  }

  /** A new key file wrapping these keys with another password (data is never re-encrypted). */
  wrap(password: string): Promise<{ id: string; bytes: Buffer }> {
    return createKeyFile(password, this.keys);
  }

  /** Keyed blob id (HMAC-SHA-256) of a plaintext. */
  blobId(plain: Uint8Array): Buffer {
    return blobId(this.keys.id, plain);
  }

  /** A keyed name for a label (records found by label, e.g. a WAL file name), as hex. */
  labelKey(text: string): string {
    return this.blobId(Buffer.from(text, "utf8")).toString("hex");
  }

  /** The chunker's secret gear table. */
  gearTable(): Uint32Array {
    this.gear ??= gearTable(this.keys.chunker);
    return this.gear;
  }

  seal(kind: ObjectKindValue, plain: Buffer, compress = true): Buffer {
    return sealObject(this.keys.meta, kind, plain, compress);
  }

  open(kind: ObjectKindValue, stored: Buffer, what: string): Buffer {
    return openObject(this.keys.meta, kind, stored, what);
  }

  /** Root of the per-pack keys of a blob type (pack builders derive each pack's key from it). */
  packRoot(type: number): Buffer {
    return type === BlobType.tree ? this.keys.meta : this.keys.data;
  }

  /** The key of one pack, from its type and salt (see docs/format.md, key mode 0). */
  packKey(type: number, salt: Uint8Array): Buffer {
    return packKey(this.packRoot(type), salt);
  }

  /** The id key, for worker threads that hash and verify blobs. */
  idKeyForWorkers(): Buffer {
    return this.keys.id;
  }

  /** The entries of a pack's encrypted header, from bytes holding its prefix, header and length. */
  readPackHeader(bytes: Buffer, what: string) {
    return readPackHeader(bytes, { data: this.keys.data, meta: this.keys.meta }, what);
  }
}
