import { randomBytes } from "node:crypto";
import os from "node:os";
import { z } from "zod";
import { KEY_SIZE, open, seal, storageId } from "../core/crypto.js";
import { CorruptionError, LifeboatError } from "../core/errors.js";
import { deriveWrappingKey, type KdfParams, plausibleKdf } from "./kdf.js";

/**
 * The repository's secrets. Each has one job, so that a host can be handed a key file holding
 * only some of them: a write-only key (below) holds `id` + `chunker` to deduplicate, keys derived
 * from `meta` that let it read the index and seal to the owner, and no `data`/`meta`.
 */
export interface MasterKeys {
  /** HMAC-SHA-256 key for blob ids. */
  id: Buffer;
  /** Seed of the chunker's gear table. */
  chunker: Buffer;
  /** Root of per-pack subkeys for data packs. */
  data: Buffer;
  /** Root of subkeys for tree packs, index files, snapshots and the config. */
  meta: Buffer;
}

export function generateMasterKeys(): MasterKeys {
  return {
    id: randomBytes(KEY_SIZE),
    chunker: randomBytes(KEY_SIZE),
    data: randomBytes(KEY_SIZE),
    meta: randomBytes(KEY_SIZE),
  };
}

/**
 * What a write-only key file wraps (format version 2): enough to chunk, hash, deduplicate and
 * seal, nothing that opens what is stored.
 */
export interface WriteOnlySecrets {
  /** The repository's id key (blob ids, labels). */
  id: Buffer;
  /** The repository's chunker key. */
  chunker: Buffer;
  /** The index key (derived from `meta`): opens and seals index files, prune plans, config.wo. */
  index: Buffer;
  /** The owner's X25519 public key (derived from `meta`): packs and documents are sealed to it. */
  owner: Buffer;
  /** The owner's Ed25519 public key: verifies what full keys sign (config.wo, index files, plans). */
  authority: Buffer;
  /** This key's own Ed25519 seed: signs what it writes (registered in the config by a full key). */
  sign: Buffer;
}

/** Key files of every kind share this frame; `kind` and `version` say what `keys` wraps. A
 * kind this version does not know is skipped when opening (a later version may add one). */
const keyFileSchema = z.object({
  version: z.number().int(),
  kind: z.string(),
  created: z.string(),
  hostname: z.string(),
  username: z.string(),
  // scrypt parameters within KDF_LIMITS (kdf.ts): a damaged file must not make us ask
  // node:crypto for terabytes.
  kdf: z.custom<KdfParams>(plausibleKdf),
  keys: z.string(),
});
export type KeyFile = z.infer<typeof keyFileSchema>;

const wrappedSchema = z.object({ id: z.string(), chunker: z.string(), data: z.string(), meta: z.string() });
const wrappedWriteOnlySchema = z.object({
  id: z.string(),
  chunker: z.string(),
  index: z.string(),
  owner: z.string(),
  authority: z.string(),
  sign: z.string(),
});

/** scrypt cost; LIFEBOAT_KDF_N lowers it for tests (it is stored in the key file either way). */
function defaultKdf(): Omit<KdfParams, "salt"> {
  const n = Number(process.env.LIFEBOAT_KDF_N ?? 32768);
  return { name: "scrypt", N: Number.isInteger(n) && n >= 2 ? n : 32768, r: 8, p: 1 };
}

const WRAP_AAD = Buffer.from("lifeboat key v1", "utf8");
const WRAP_AAD_WRITE_ONLY = Buffer.from("lifeboat key v2 write-only", "utf8");

const b64 = (o: Record<string, Buffer>) =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v.toString("base64")]));

async function wrapSecrets(
  password: string,
  frame: { version: number; kind: string },
  secrets: Record<string, Buffer>,
  aad: Buffer,
): Promise<{ id: string; bytes: Buffer }> {
  const kdf: KdfParams = { ...defaultKdf(), salt: randomBytes(16).toString("base64") };
  const wrapping = await deriveWrappingKey(password, kdf);
  const file: KeyFile = {
    ...frame,
    created: new Date().toISOString(),
    hostname: os.hostname(),
    username: safeUsername(),
    kdf,
    keys: seal(wrapping, Buffer.from(JSON.stringify(b64(secrets))), aad).toString("base64"),
  };
  const bytes = Buffer.from(`${JSON.stringify(file, null, 2)}\n`);
  return { id: storageId(bytes), bytes };
}

/** Wraps the master keys with a password; returns the key file's bytes and its id. */
export function createKeyFile(password: string, keys: MasterKeys): Promise<{ id: string; bytes: Buffer }> {
  const { id, chunker, data, meta } = keys;
  return wrapSecrets(password, { version: 1, kind: "full" }, { id, chunker, data, meta }, WRAP_AAD);
}

/** Wraps a write-only key's secrets with a password (key file version 2, kind "write-only"). */
export function createWriteOnlyKeyFile(
  password: string,
  s: WriteOnlySecrets,
): Promise<{ id: string; bytes: Buffer }> {
  const { id, chunker, index, owner, authority, sign } = s;
  return wrapSecrets(
    password,
    { version: 2, kind: "write-only" },
    { id, chunker, index, owner, authority, sign },
    WRAP_AAD_WRITE_ONLY,
  );
}

/** What kind of key a file holds: "full", "write-only", or undefined for a kind this version does not know. */
export function keyFileKind(file: KeyFile): "full" | "write-only" | undefined {
  if (file.version === 1 && file.kind === "full") return "full";
  if (file.version === 2 && file.kind === "write-only") return "write-only";
  return undefined;
}

export function parseKeyFile(bytes: Buffer, what: string): KeyFile {
  try {
    return keyFileSchema.parse(JSON.parse(bytes.toString("utf8")));
  } catch {
    throw new CorruptionError(what, "not a valid lifeboat key file");
  }
}

async function unwrapSecrets<T extends Record<string, string>>(
  file: KeyFile,
  password: string,
  aad: Buffer,
  schema: z.ZodType<T>,
): Promise<Record<keyof T, Buffer> | undefined> {
  const wrapping = await deriveWrappingKey(password, file.kdf);
  let inner: Buffer;
  try {
    inner = open(wrapping, Buffer.from(file.keys, "base64"), aad, "key file");
  } catch {
    return undefined;
  }
  let w: T;
  try {
    w = schema.parse(JSON.parse(inner.toString("utf8")));
  } catch {
    throw new LifeboatError("KEY_ERROR", "key file opens but does not hold the keys in the expected form");
  }
  const keys = Object.fromEntries(Object.entries(w).map(([k, v]) => [k, Buffer.from(v, "base64")]));
  for (const k of Object.values(keys)) {
    if (k.length !== KEY_SIZE) throw new LifeboatError("KEY_ERROR", "key file holds a key of the wrong size");
  }
  return keys as Record<keyof T, Buffer>;
}

/** Returns the master keys if `password` opens this (full) key file, undefined if it does not. */
export function unwrapKeyFile(file: KeyFile, password: string): Promise<MasterKeys | undefined> {
  if (keyFileKind(file) !== "full") return Promise.resolve(undefined);
  return unwrapSecrets(file, password, WRAP_AAD, wrappedSchema);
}

/** Returns a write-only key's secrets if `password` opens this write-only key file. */
export function unwrapWriteOnlyKeyFile(
  file: KeyFile,
  password: string,
): Promise<WriteOnlySecrets | undefined> {
  if (keyFileKind(file) !== "write-only") return Promise.resolve(undefined);
  return unwrapSecrets(file, password, WRAP_AAD_WRITE_ONLY, wrappedWriteOnlySchema);
}

function safeUsername(): string {
  try {
    return os.userInfo().username;
  } catch {
    return String(process.getuid?.() ?? "unknown");
  }
}
