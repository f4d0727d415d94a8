import { randomBytes } from "node:crypto";
import { gearTable } from "../core/chunker.js";
import { blobId, deriveKey } from "../core/crypto.js";
import { CorruptionError, LifeboatError } from "../core/errors.js";
import { Ed25519Signer, X25519Secret } from "./asymmetric.js";
import { BlobType } from "./blob.js";
import type { RepoConfig } from "./config.js";
import { hasFeature } from "./features.js";
import {
  createKeyFile,
  createWriteOnlyKeyFile,
  generateMasterKeys,
  type KeyFile,
  keyFileKind,
  type MasterKeys,
  unwrapKeyFile,
  unwrapWriteOnlyKeyFile,
  type WriteOnlySecrets,
} from "./keys.js";
import { type NewPackKey, newPackKey, openPackKey, type PackPrefix, readPackHeader } from "./pack.js";
import {
  ObjectKind,
  type ObjectKindValue,
  openObject,
  openToOwner,
  openWithIndexKey,
  SealMode,
  sealModeOf,
  sealObject,
  sealToOwner,
  sealWithIndexKey,
} from "./sealed-object.js";

export type KeyKind = "full" | "write-only";

/** What a write-only key may not do, as users meet it. */
export function needsFullKey(what: string): LifeboatError {
  return new LifeboatError(
    "NEEDS_FULL_KEY",
    `this password opens a write-only key, which cannot ${what}`,
    "run it with a full key (a password from `lifeboat init` or `lifeboat key add`), kept away from this host",
  );
}

/** The secrets a full key derives from its metadata key for write-only keys (docs/format.md). */
export function ownerSecrets(meta: Buffer): { index: Buffer; owner: X25519Secret; authority: Ed25519Signer } {
  const none = new Uint8Array(0);
  return {
    index: deriveKey(meta, none, "lifeboat index key v2"),
    owner: new X25519Secret(deriveKey(meta, none, "lifeboat owner x25519 v2")),
    authority: new Ed25519Signer(deriveKey(meta, none, "lifeboat owner ed25519 v2")),
  };
}

/** Kinds only a full key writes; readers take them only from a full key (mode 0, or mode 2
 * signed by the owner). */
const AUTHORITY_KINDS = new Set<number>([ObjectKind.config, ObjectKind.writeOnlyConfig, ObjectKind.gcPlan]);
/** Kinds sealed with the index key once write-only keys are enabled, so that they can read them. */
const INDEX_KINDS = new Set<number>([ObjectKind.index, ObjectKind.gcPlan, ObjectKind.writeOnlyConfig]);

interface Full {
  kind: "full";
  keys: MasterKeys;
  derived?: ReturnType<typeof ownerSecrets>;
}

interface WriteOnly {
  kind: "write-only";
  keys: WriteOnlySecrets;
  signer: Ed25519Signer;
}

/** An object signed by a key the config (as this process last read it) does not list. */
export class UnknownSignerError extends CorruptionError {}

/** An object opened, and who wrote it: undefined for a full key, else a write-only key's id. */
export interface Opened {
  plain: Buffer;
  writer?: string;
}

/**
 * The repository's keys and everything done with them. The keys never leave this object:
 * callers get ids, gear tables, sealed and opened objects, never a key (the parts of `repo/`
 * that hand a key to a worker thread or a pack builder ask for it by purpose).
 *
 * A full key holds the four master keys. A write-only key (docs/format.md, "Write-only keys")
 * holds the id and chunker keys, the index key, the owner's public keys and its own signing key:
 * this is the one place that decides what it may open (index files, prune plans and config.wo,
 * nothing else) and how what it writes is sealed (to the owner's public key, signed).
 */
export class KeyRing {
  private gear: Uint32Array | undefined;
  /** Write-only keys the config lists, by Ed25519 public key (base64). */
  private signers = new Map<string, { keyId: string; removed: boolean }>();
  /** Full keys: whether index files and plans are sealed with the index key (feature on). */
  private indexSealing = false;
  /** Reads the config again (a write-only key made since this process read it). */
  private reloadConfig: (() => Promise<void>) | undefined;

  private constructor(private readonly s: Full | WriteOnly) {}

  static generate(): KeyRing {
    return new KeyRing({ kind: "full", keys: generateMasterKeys() });
  }

  /** The key ring a password opens, or undefined when it does not open this key file (or the
   * file is of a kind this version does not know). */
  static async unwrap(file: KeyFile, password: string): Promise<KeyRing | undefined> {
    const kind = keyFileKind(file);
    if (kind === "full") {
      const keys = await unwrapKeyFile(file, password);
      return keys ? new KeyRing({ kind: "full", keys }) : undefined;
    }
    if (kind === "write-only") {
      const keys = await unwrapWriteOnlyKeyFile(file, password);
      return keys
        ? new KeyRing({ kind: "write-only", keys, signer: new Ed25519Signer(keys.sign) })
        : undefined;
    }
    return undefined;
  }

  get kind(): KeyKind {
    return this.s.kind;
  }

  private full(what: string): Full & { derived: ReturnType<typeof ownerSecrets> } {
    if (this.s.kind !== "full") throw needsFullKey(what);
    this.s.derived ??= ownerSecrets(this.s.keys.meta);
    return this.s as Full & { derived: ReturnType<typeof ownerSecrets> };
  }

  /** A write-only key's own signing public key (base64), as the config lists it. */
  get signerId(): string | undefined {
    return this.s.kind === "write-only" ? this.s.signer.publicKey.toString("base64") : undefined;
  }

  /** Takes what the config says about write-only keys: who may sign, how to seal the index. */
  configure(config: RepoConfig): void {
    this.indexSealing = hasFeature(config.features, "write-only");
    this.signers = new Map(
      Object.entries(config.writeOnly?.keys ?? {}).map(([keyId, k]) => [
        k.signer,
        { keyId, removed: k.removed !== undefined },
      ]),
    );
  }

  /** How to read the config again when an object names a signer it does not list yet. */
  onUnknownSigner(reload: () => Promise<void>): void {
    this.reloadConfig = reload;
  }

  /** `openAttributed`, reading the config again once if the signer is not listed (yet). */
  async openLatest(kind: ObjectKindValue, stored: Buffer, what: string): Promise<Opened> {
    try {
      return this.openAttributed(kind, stored, what);
    } catch (e) {
      if (!(e instanceof UnknownSignerError) || !this.reloadConfig) throw e;
      await this.reloadConfig();
      return this.openAttributed(kind, stored, what);
    }
  }

  /** Whether a write-only key's registration was removed (`key remove`). */
  isRemoved(keyId: string): boolean {
    for (const s of this.signers.values()) if (s.keyId === keyId) return s.removed;
    return true;
  }

  /** A new key file wrapping these keys with another password (data is never re-encrypted). */
  wrap(password: string): Promise<{ id: string; bytes: Buffer }> {
    return createKeyFile(password, this.full("add or change a password").keys);
  }

  /** A new write-only key file (not stored): its id, bytes and Ed25519 public key (base64). */
  async makeWriteOnlyKey(password: string): Promise<{ id: string; bytes: Buffer; signer: string }> {
    const f = this.full("make another write-only key");
    const sign = randomBytes(32);
    const made = await createWriteOnlyKeyFile(password, {
      id: f.keys.id,
      chunker: f.keys.chunker,
      index: f.derived.index,
      owner: f.derived.owner.publicKey,
      authority: f.derived.authority.publicKey,
      sign,
    });
    return { ...made, signer: new Ed25519Signer(sign).publicKey.toString("base64") };
  }

  /** Keyed blob id (HMAC-SHA-256) of a plaintext. */
  blobId(plain: Uint8Array): Buffer {
    return blobId(this.s.keys.id, plain);
  }

  /** A keyed name for a label (records found by label, e.g. a WAL file name), as hex. */
  labelKey(text: string): string {
    return this.blobId(Buffer.from(text, "utf8")).toString("hex");
  }

  /** The chunker's secret gear table. */
  gearTable(): Uint32Array {
    this.gear ??= gearTable(this.s.keys.chunker);
    return this.gear;
  }

  /**
   * Seals a document the way its kind and this key call for: full keys with the metadata key
   * (mode 0), or — once write-only keys are enabled — index files and plans with the index key,
   * signed (mode 2); write-only keys seal index files with the index key and everything else to
   * the owner's public key (mode 1), signed with their own key.
   */
  seal(kind: ObjectKindValue, plain: Buffer, compress = true): Buffer {
    if (this.s.kind === "full") {
      const f = this.full("");
      if (kind === ObjectKind.writeOnlyConfig || (this.indexSealing && INDEX_KINDS.has(kind)))
        return sealWithIndexKey(f.derived.index, f.derived.authority, kind, plain, compress);
      return sealObject(f.keys.meta, kind, plain, compress);
    }
    if (AUTHORITY_KINDS.has(kind) || kind === ObjectKind.drill)
      throw needsFullKey(`write a ${kindName(kind)}`);
    if (kind === ObjectKind.index)
      return sealWithIndexKey(this.s.keys.index, this.s.signer, kind, plain, compress);
    return sealToOwner(this.s.keys.owner, this.s.signer, kind, plain, compress);
  }

  open(kind: ObjectKindValue, stored: Buffer, what: string): Buffer {
    return this.openAttributed(kind, stored, what).plain;
  }

  /**
   * Opens a document and says who wrote it. A write-only key opens only what is sealed with the
   * index key; a signature must come from the owner or a write-only key the config lists, and
   * the kinds only full keys write (config, plans) are taken only from a full key.
   */
  openAttributed(kind: ObjectKindValue, stored: Buffer, what: string): Opened {
    const mode = sealModeOf(stored, kind, what);
    let opened: { plain: Buffer; signer: Buffer };
    if (mode === SealMode.derived) {
      return { plain: openObject(this.full(`read ${what}`).keys.meta, kind, stored, what) };
    } else if (mode === SealMode.toOwner) {
      opened = openToOwner(this.full(`read ${what}`).derived.owner, kind, stored, what);
    } else {
      const index = this.s.kind === "full" ? this.full("").derived.index : this.s.keys.index;
      opened = openWithIndexKey(index, kind, stored, what);
    }
    const authority =
      this.s.kind === "full" ? this.full("").derived.authority.publicKey : this.s.keys.authority;
    if (opened.signer.equals(authority)) return { plain: opened.plain };
    const signer = this.signers.get(opened.signer.toString("base64"));
    if (!signer) throw new UnknownSignerError(what, "it is signed by a key this repository does not list");
    if (AUTHORITY_KINDS.has(kind))
      throw new CorruptionError(
        what,
        `it was written by write-only key ${signer.keyId.slice(0, 8)}, which may not write a ${kindName(kind)}`,
      );
    return { plain: opened.plain, writer: signer.keyId };
  }

  /** Writing: the key of a new pack of this type (see `newPackKey` in pack.ts). */
  newPackKey(type: number): NewPackKey {
    if (this.s.kind === "write-only") return newPackKey({ owner: this.s.keys.owner });
    return newPackKey({ root: type === BlobType.tree ? this.s.keys.meta : this.s.keys.data });
  }

  /** Reading: the key of a stored pack, from its prefix (see `openPackKey` in pack.ts). */
  packKey(prefix: PackPrefix, what: string): Buffer {
    const f = this.full(`read ${what}`);
    return openPackKey(prefix, { data: f.keys.data, meta: f.keys.meta, owner: f.derived.owner }, what);
  }

  /** The id key, for worker threads that hash and verify blobs. */
  idKeyForWorkers(): Buffer {
    return this.s.keys.id;
  }

  /** The entries of a pack's encrypted header, from bytes holding its prefix, header and length. */
  readPackHeader(bytes: Buffer, what: string) {
    const f = this.full(`read ${what}`);
    return readPackHeader(bytes, { data: f.keys.data, meta: f.keys.meta, owner: f.derived.owner }, what);
  }
}

function kindName(kind: number): string {
  const names: Record<number, string> = {
    [ObjectKind.config]: "config",
    [ObjectKind.writeOnlyConfig]: "config",
    [ObjectKind.gcPlan]: "prune plan",
    [ObjectKind.drill]: "drill record",
  };
  return names[kind] ?? `object of kind ${kind}`;
}
