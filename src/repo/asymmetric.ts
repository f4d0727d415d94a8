import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { CorruptionError } from "../core/errors.js";

/**
 * The two public-key primitives of write-only keys (docs/format.md, "Write-only keys"), on raw
 * 32-byte keys as the format stores them: X25519 to seal pack and object keys to the owner's
 * public key, Ed25519 to sign what a key writes so that readers know who wrote it.
 * node:crypto takes keys as DER; these fixed prefixes turn raw bytes into PKCS#8 / SPKI.
 */
const X25519_PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex");
const X25519_SPKI = Buffer.from("302a300506032b656e032100", "hex");
const ED25519_PKCS8 = Buffer.from("302e020100300506032b657004220420", "hex");
const ED25519_SPKI = Buffer.from("302a300506032b6570032100", "hex");

const der = (prefix: Buffer, raw: Buffer) => Buffer.concat([prefix, raw]);
const rawPublic = (k: KeyObject) =>
  Buffer.from(
    (k.type === "public" ? k : createPublicKey(k)).export({ format: "der", type: "spki" }).subarray(-32),
  );

function publicKeyObject(prefix: Buffer, raw: Buffer, what: string): KeyObject {
  if (raw.length !== 32) throw new CorruptionError(what, "public key is not 32 bytes");
  return createPublicKey({ key: der(prefix, raw), format: "der", type: "spki" });
}

/** An X25519 private key (32 secret bytes, clamped by X25519 itself). */
export class X25519Secret {
  private readonly key: KeyObject;
  readonly publicKey: Buffer;

  constructor(secret: Buffer) {
    this.key = createPrivateKey({ key: der(X25519_PKCS8, secret), format: "der", type: "pkcs8" });
    this.publicKey = rawPublic(this.key);
  }

  /** The shared secret with a peer's public key; a point of small order is damage. */
  agree(peer: Buffer, what: string): Buffer {
    try {
      return diffieHellman({ privateKey: this.key, publicKey: publicKeyObject(X25519_SPKI, peer, what) });
    } catch (e) {
      if (e instanceof CorruptionError) throw e;
      throw new CorruptionError(what, "its public key is not a usable X25519 key");
    }
  }
}

/**
 * A fresh key pair whose secret never leaves this call: the shared secret with `recipient`
 * and the ephemeral public key that lets the recipient compute it. The sender cannot compute
 * it again later, so what it sealed stays sealed to it too.
 */
export function x25519Ephemeral(recipient: Buffer): { ephemeral: Buffer; shared: Buffer } {
  const pair = generateKeyPairSync("x25519");
  const shared = diffieHellman({
    privateKey: pair.privateKey,
    publicKey: publicKeyObject(X25519_SPKI, recipient, "owner key"),
  });
  return { ephemeral: rawPublic(pair.publicKey), shared };
}

/**
 * The symmetric key of one sealed item: HKDF-SHA-256 over the X25519 shared secret, salted with
 * `salt | ephemeral public key | recipient public key` (so a key is bound to both ends).
 */
export function sealedKey(
  shared: Buffer,
  salt: Uint8Array,
  ephemeral: Buffer,
  recipient: Buffer,
  info: string,
) {
  return Buffer.from(
    hkdfSync("sha256", shared, Buffer.concat([salt, ephemeral, recipient]), Buffer.from(info, "utf8"), 32),
  );
}

/** An Ed25519 signing key from its 32-byte seed. */
export class Ed25519Signer {
  private readonly key: KeyObject;
  readonly publicKey: Buffer;

  constructor(seed: Buffer) {
    this.key = createPrivateKey({ key: der(ED25519_PKCS8, seed), format: "der", type: "pkcs8" });
    this.publicKey = rawPublic(this.key);
  }

  sign(message: Buffer): Buffer {
    return sign(null, message, this.key);
  }
}

/** Whether `signature` is `publicKey`'s Ed25519 signature of `message` (false for a bad key). */
export function ed25519Verify(publicKey: Buffer, message: Buffer, signature: Buffer): boolean {
  try {
    return verify(null, message, publicKeyObject(ED25519_SPKI, publicKey, "signer"), signature);
  } catch {
    return false;
  }
}
