import type { Backend } from "../backend/backend.js";

/**
 * Stores an object whole or not at all, as far as this process can tell: when the write fails,
 * whatever may stand under the name is deleted before the error goes on. Storage that is not
 * atomic may hold the first bytes (a torn upload), or the whole object whose answer was lost;
 * either would later be read as an object nobody wrote (found by the fault campaign,
 * docs/reliability.md). Objects are named by their content, so nothing else can be there.
 */
export async function putWhole(backend: Backend, name: string, bytes: Buffer): Promise<void> {
  try {
    await backend.put(name, bytes);
  } catch (e) {
    await backend.delete(name).catch(() => {});
    throw e;
  }
}
