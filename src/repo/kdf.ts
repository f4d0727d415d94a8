import { scrypt } from "node:crypto";
import { KEY_SIZE } from "../core/crypto.js";

/** How a key file's wrapping key is derived from its password (see keys.ts). */
export interface KdfParams {
  name: "scrypt";
  N: number;
  r: number;
  p: number;
  salt: string;
}

/** scrypt needs 128·N·r bytes and N a power of two: a damaged file must not make us ask
 * node:crypto for terabytes (or fail inside it), so costs beyond these are refused. */
const KDF_LIMITS = { maxN: 2 ** 24, maxR: 64, maxP: 16, maxMemory: 2 ** 30 };

/** Whether `k` is scrypt parameters within KDF_LIMITS (a key file's `kdf`, see keys.ts). */
export function plausibleKdf(k: unknown): k is KdfParams {
  const o = k as Partial<KdfParams> | null;
  const int = (v: unknown, min: number, max: number) =>
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
  return (
    typeof o === "object" &&
    o !== null &&
    o.name === "scrypt" &&
    typeof o.salt === "string" &&
    int(o.N, 2, KDF_LIMITS.maxN) &&
    (o.N! & (o.N! - 1)) === 0 &&
    int(o.r, 1, KDF_LIMITS.maxR) &&
    int(o.p, 1, KDF_LIMITS.maxP) &&
    128 * o.N! * o.r! <= KDF_LIMITS.maxMemory
  );
}

function derive(password: string, kdf: KdfParams): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      password.normalize("NFC"),
      Buffer.from(kdf.salt, "base64"),
      KEY_SIZE,
      { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + 1024 * 1024 },
      (e, key) => (e ? reject(e) : resolve(key)),
    ),
  );
}

/** Derivations started before anything asked for them (deriveAhead), by their parameters. */
const ahead = new Map<string, { password: string; key: Promise<Buffer> }>();
const paramsId = (k: KdfParams) => `${k.N}/${k.r}/${k.p}/${k.salt}`;

/**
 * Starts deriving the wrapping key of `password` with these parameters on the thread pool, for
 * deriveWrappingKey to take later (once). A guess: if another password or key file is used
 * in the end, it is simply not taken.
 */
export function deriveAhead(password: string, kdf: KdfParams): void {
  const key = derive(password, kdf);
  key.catch(() => {}); // taken later, or never
  ahead.set(paramsId(kdf), { password, key });
}

/** The wrapping key `password` gives with these parameters (scrypt, ~0.1 s at the default cost). */
export function deriveWrappingKey(password: string, kdf: KdfParams): Promise<Buffer> {
  const id = paramsId(kdf);
  const started = ahead.get(id);
  if (started) {
    ahead.delete(id);
    if (started.password === password) return started.key.catch(() => derive(password, kdf));
  }
  return derive(password, kdf);
}

/** Derivations started ahead and not taken yet (for tests). */
export function derivationsAhead(): number {
  return ahead.size;
}
