import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { CorruptionError } from "./errors.js";

/** AES-256-GCM sizes used everywhere in the format. */
export const NONCE_SIZE = 12;
export const TAG_SIZE = 16;
export const KEY_SIZE = 32;

/** Encrypts `plain` under `key` with a fresh random nonce: nonce || ciphertext || tag. */
export function seal(key: Buffer, plain: Uint8Array, aad: Uint8Array): Buffer {
  return Buffer.concat(sealParts(key, plain, aad));
}

/** `seal` as separate buffers [nonce, ciphertext, tag], for writers that avoid the extra copy. */
export function sealParts(key: Buffer, plain: Uint8Array, aad: Uint8Array): Buffer[] {
  const nonce = freshNonce();
  const c = createCipheriv("aes-256-gcm", key, nonce);
  c.setAAD(aad);
  const body = c.update(plain);
  const fin = c.final(); // empty for GCM, kept for correctness
  return fin.length > 0 ? [nonce, body, fin, c.getAuthTag()] : [nonce, body, c.getAuthTag()];
}

/** Random bytes drawn 4 KiB at a time: one CSPRNG call per 341 nonces instead of one each
 * (a backup seals one per blob). Every slice is handed out once; a used buffer is never
 * refilled, only replaced. */
let noncePool = Buffer.alloc(0);
let nonceAt = 0;
function freshNonce(): Buffer {
  if (nonceAt + NONCE_SIZE > noncePool.length) {
    noncePool = randomBytes(4096);
    nonceAt = 0;
  }
  nonceAt += NONCE_SIZE;
  return noncePool.subarray(nonceAt - NONCE_SIZE, nonceAt);
}

/** Reverses `seal`; throws CorruptionError (naming `what`) when authentication fails. */
export function open(key: Buffer, sealed: Uint8Array, aad: Uint8Array, what: string): Buffer {
  if (sealed.length < NONCE_SIZE + TAG_SIZE)
    throw new CorruptionError(what, "too short to be encrypted data");
  const nonce = sealed.subarray(0, NONCE_SIZE);
  const tag = sealed.subarray(sealed.length - TAG_SIZE);
  const d = createDecipheriv("aes-256-gcm", key, nonce);
  d.setAAD(aad);
  d.setAuthTag(tag);
  try {
    const body = d.update(sealed.subarray(NONCE_SIZE, sealed.length - TAG_SIZE));
    const fin = d.final(); // empty for GCM: skip the copy Buffer.concat would make
    return fin.length === 0 ? body : Buffer.concat([body, fin]);
  } catch {
    throw new CorruptionError(what, "authentication failed (data was modified or damaged)");
  }
}

/** HKDF-SHA-256, used to derive per-pack and per-object subkeys from a long-lived key. */
export function deriveKey(key: Buffer, salt: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync("sha256", key, salt, Buffer.from(info, "utf8"), KEY_SIZE));
}

/** Keyed blob id: HMAC-SHA-256 over the plaintext, so ids reveal nothing to the storage. */
export function blobId(idKey: Buffer, plain: Uint8Array): Buffer {
  return createHmac("sha256", idKey).update(plain).digest();
}

/** Storage id of an object (pack, index, snapshot, key file): SHA-256 of its stored bytes. */
export function storageId(stored: Uint8Array): string {
  return createHash("sha256").update(stored).digest("hex");
}
