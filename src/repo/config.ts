import { z } from "zod";
import { DEFAULT_CHUNKER_PARAMS } from "../core/chunker.js";
import { storageId } from "../core/crypto.js";
import { CorruptionError, schemaProblem } from "../core/errors.js";

const MAX_SIZE = 2 ** 31;

/** Repository-wide settings, stored encrypted in the `config` object (kind "config"). */
export const configSchema = z.object({
  /** 1, or 2 when the repository uses format features (see features.ts). */
  version: z.union([z.literal(1), z.literal(2)]),
  /** Random repository id (hex), shown to users and used to tell repositories apart. */
  id: z.string().regex(/^[0-9a-f]{64}$/),
  created: z.string(),
  /** Blob lengths and pack offsets are u32 in the format: a chunk and a pack stay below 2^31. */
  chunker: z.object({
    min: z.number().int().min(64),
    avg: z.number().int().min(256),
    max: z.number().int().min(1024).max(MAX_SIZE),
  }),
  /** Target size of pack files in bytes. */
  packSize: z.number().int().min(1024).max(MAX_SIZE),
  /**
   * S3 Object Lock retention every writer applies (format feature `retention`): each object but
   * sessions and prune plans is written locked for `days` from its write. Absent: none.
   */
  retention: z
    .object({ days: z.number().int().min(1), mode: z.enum(["governance", "compliance"]) })
    .optional(),
  /**
   * Write-only keys (format feature `write-only`): each one's Ed25519 public key, by key id.
   * Readers accept what a write-only key signed only when its key is listed here, and this list
   * can only be written by a full key (the config is sealed with the metadata key).
   */
  writeOnly: z
    .object({
      keys: z.record(
        z.string().regex(/^[0-9a-f]{64}$/),
        z.object({
          /** Ed25519 public key, base64. */
          signer: z.string(),
          created: z.string(),
          hostname: z.string(),
          username: z.string(),
          /** Set by `key remove`: the key may no longer write, and nobody deduplicates against
           * what it wrote; what it wrote before stays readable (and says who wrote it). */
          removed: z.string().optional(),
        }),
      ),
    })
    .optional(),
  /** Format features in use, by what they gate (features.ts). Absent in version 1. */
  features: z.object({ read: z.array(z.string()), write: z.array(z.string()) }).optional(),
});
export type RepoConfig = z.infer<typeof configSchema>;

export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;
export const defaultChunkerParams = () => ({ ...DEFAULT_CHUNKER_PARAMS });

export function decodeConfig(buf: Buffer): RepoConfig {
  try {
    const c = configSchema.parse(JSON.parse(buf.toString("utf8")));
    if (!(c.chunker.min < c.chunker.avg && c.chunker.avg < c.chunker.max))
      throw new Error("chunker sizes out of order");
    return c;
  } catch (e) {
    throw new CorruptionError("config", `malformed repository config: ${schemaProblem(e)}`);
  }
}

/** Object names in the repository: the layout documented in docs/format.md. */
export const names = {
  config: "config",
  /** The config as write-only keys read it (format feature `write-only`). */
  writeOnlyConfig: "config.wo",
  key: (id: string) => `keys/${id}`,
  pack: (id: string) => `data/${id.slice(0, 2)}/${id}`,
  index: (id: string) => `index/${id}`,
  snapshot: (id: string) => `snapshots/${id}`,
};

/** Storage ids are 64 lowercase hex characters; anything else in a listing is ignored. */
export const isStorageId = (s: string) => /^[0-9a-f]{64}$/.test(s);

/**
 * Every object but the config is named by the SHA-256 of its stored bytes: an object whose bytes
 * do not match its name is damaged, or is another object's bytes put under this name (storage
 * can swap them without any key). Readers check it before trusting what they decrypt.
 */
export function checkStorageId(stored: Uint8Array, id: string, what: string): void {
  if (storageId(stored) !== id)
    throw new CorruptionError(
      what,
      "content does not match its name (SHA-256): it is damaged, or another object was stored under this name",
    );
}
