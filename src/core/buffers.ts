import { MessageChannel, type MessagePort } from "node:worker_threads";

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

/** Below this a buffer is not worth a release: Node's allocator reuses it soon enough. */
const RELEASE_MIN = 16 * 1024;
let sink: MessagePort | undefined;

/**
 * Frees `b`'s memory now instead of at some later garbage collection, when `b` is the whole
 * of its ArrayBuffer (anything else is left alone). V8 collects a dead ArrayBuffer only when
 * its heap asks for a collection, and memory outside the heap counts little towards that:
 * tens of MiB of compressed chunks, ciphertexts and pack windows used to wait for it. The
 * buffer is detached (length 0 in every view of it), so the caller must hold the only
 * reference: only for buffers this process made or was handed and never gave to anything that
 * could still read them (a socket, a stream). How: transferring an ArrayBuffer in a message
 * detaches it, and a message posted to a closed port is dropped with what it carries (Node
 * 20 has no `ArrayBuffer.prototype.transfer` without a flag).
 */
export function release(b: Uint8Array): void {
  if (b.byteLength < RELEASE_MIN || !ownsMemory(b) || !(b.buffer instanceof ArrayBuffer)) return;
  if (!sink) {
    sink = new MessageChannel().port1;
    sink.close();
  }
  try {
    sink.postMessage(null, [b.buffer]);
  } catch {
    // Not detachable (memory an addon lent out): left to the garbage collector.
  }
}
