/*
 * Buffers that cross to and from worker threads. A buffer is handed over (transferred) only
 * when it is the whole of its ArrayBuffer; anything else is copied into memory of its own.
 * Never `Buffer.from` for that copy: small copies come from Node's shared 8 KiB pool, which
 * Node 21 and later refuse to transfer.
 */

/** A Buffer over the same memory as `u` (no copy). */
export const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** Whether `b` is the whole of its ArrayBuffer (so it can be transferred instead of copied). */
export const ownsMemory = (b: Uint8Array): boolean =>
  b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;

/** A copy of `b` in memory of its own (never Node's shared pool). */
export function ownCopy(b: Uint8Array): Buffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  c.set(b);
  return c;
}

/** `b` itself when it owns its memory, else a copy that does: something a worker may take. */
export const transferable = (b: Buffer): Buffer => (ownsMemory(b) ? b : ownCopy(b));
