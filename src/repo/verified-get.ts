import type { Backend } from "../backend/backend.js";
import { storageId } from "../core/crypto.js";
import { checkStorageId } from "./config.js";

/**
 * Reads an object named by the SHA-256 of its bytes (a snapshot, an index file, a record) and
 * checks it against its name. Bytes that do not match are read once more before they count as
 * damage: storage that answered short or garbled once (a cut transfer, a proxy) is not a
 * damaged repository.
 */
export async function getVerified(backend: Backend, name: string, id: string): Promise<Buffer> {
  const first = await backend.get(name);
  if (storageId(first) === id) return first;
  const again = await backend.get(name);
  checkStorageId(again, id, name);
  return again;
}
