import { randomBytes, scrypt as scryptCb } from "node:crypto";
import os from "node:os";
import { promisify } from "node:util";
import { z } from "zod";
import { KEY_SIZE, open, seal, storageId } from "../core/crypto.js";
import { CorruptionError, LifeboatError } from "../core/errors.js";

const scrypt = promisify(scryptCb) as (
  password: string | Buffer,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

/**
 * The repository's secrets. Each has one job, so that a later format version can hand a host a
 * key file holding only some of them (a write-only host: `id` + `chunker` to deduplicate, a
 * public key to seal per-pack data keys, no `data`/`meta` to read old data).
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

export interface KdfParams {
  name: "scrypt";
  N: number;
  r: number;
  p: number;
  salt: string;
}

const keyFileSchema = z.object({
  version: z.literal(1),
  kind: z.literal("full"),
  created: z.string(),
  hostname: z.string(),
  username: z.string(),
  // scrypt needs 128·N·r bytes and N a power of two: a damaged file must not make us ask
  // node:crypto for terabytes (or fail inside it), so costs beyond 1 GiB are refused here.
  kdf: z
    .object({
      name: z.literal("scrypt"),
      N: z
        .number()
        .int()
        .min(2)
        .max(2 ** 24)
        .refine((n) => (n & (n - 1)) === 0, "N must be a power of two"),
      r: z.number().int().min(1).max(64),
      p: z.number().int().min(1).max(16),
      salt: z.string(),
    })
    .refine((k) => 128 * k.N * k.r <= 2 ** 30, "scrypt would need more than 1 GiB"),
  keys: z.string(),
});
export type KeyFile = z.infer<typeof keyFileSchema>;

const wrappedSchema = z.object({ id: z.string(), chunker: z.string(), data: z.string(), meta: z.string() });

/** scrypt cost; LIFEBOAT_KDF_N lowers it for tests (it is stored in the key file either way). */
function defaultKdf(): Omit<KdfParams, "salt"> {
  const n = Number(process.env.LIFEBOAT_KDF_N ?? 32768);
  return { name: "scrypt", N: Number.isInteger(n) && n >= 2 ? n : 32768, r: 8, p: 1 };
}

async function deriveWrappingKey(password: string, kdf: KdfParams): Promise<Buffer> {
  return scrypt(password.normalize("NFC"), Buffer.from(kdf.salt, "base64"), KEY_SIZE, {
    N: kdf.N,
    r: kdf.r,
    p: kdf.p,
    maxmem: 256 * kdf.N * kdf.r + 1024 * 1024,
  });
}

const WRAP_AAD = Buffer.from("lifeboat key v1", "utf8");

/** Wraps the master keys with a password; returns the key file's bytes and its id. */
export async function createKeyFile(
  password: string,
  keys: MasterKeys,
): Promise<{ id: string; bytes: Buffer }> {
  const kdf: KdfParams = { ...defaultKdf(), salt: randomBytes(16).toString("base64") };
  const wrapping = await deriveWrappingKey(password, kdf);
  const inner = Buffer.from(
    JSON.stringify({
      id: keys.id.toString("base64"),
      chunker: keys.chunker.toString("base64"),
      data: keys.data.toString("base64"),
      meta: keys.meta.toString("base64"),
    }),
  );
  const file: KeyFile = {
    version: 1,
    kind: "full",
    created: new Date().toISOString(),
    hostname: os.hostname(),
    username: safeUsername(),
    kdf,
    keys: seal(wrapping, inner, WRAP_AAD).toString("base64"),
  };
  const bytes = Buffer.from(`${JSON.stringify(file, null, 2)}\n`);
  return { id: storageId(bytes), bytes };
}

export function parseKeyFile(bytes: Buffer, what: string): KeyFile {
  try {
    return keyFileSchema.parse(JSON.parse(bytes.toString("utf8")));
  } catch {
    throw new CorruptionError(what, "not a valid lifeboat key file");
  }
}

/** Returns the master keys if `password` opens this key file, undefined if it does not. */
export async function unwrapKeyFile(file: KeyFile, password: string): Promise<MasterKeys | undefined> {
  const wrapping = await deriveWrappingKey(password, file.kdf);
  let inner: Buffer;
  try {
    inner = open(wrapping, Buffer.from(file.keys, "base64"), WRAP_AAD, "key file");
  } catch {
    return undefined;
  }
  let w: z.infer<typeof wrappedSchema>;
  try {
    w = wrappedSchema.parse(JSON.parse(inner.toString("utf8")));
  } catch {
    throw new LifeboatError("KEY_ERROR", "key file opens but does not hold the keys in the expected form");
  }
  const keys = {
    id: Buffer.from(w.id, "base64"),
    chunker: Buffer.from(w.chunker, "base64"),
    data: Buffer.from(w.data, "base64"),
    meta: Buffer.from(w.meta, "base64"),
  };
  for (const k of Object.values(keys)) {
    if (k.length !== KEY_SIZE) throw new LifeboatError("KEY_ERROR", "key file holds a key of the wrong size");
  }
  return keys;
}

function safeUsername(): string {
  try {
    return os.userInfo().username;
  } catch {
    return String(process.getuid?.() ?? "unknown");
  }
}
