import type { Backend, ObjectInfo } from "../backend/backend.js";
import { names } from "./config.js";
import { needsFullKey } from "./key-ring.js";

/** What a write-only key reads and lists: key files (to find its own), its config, the index
 * (to deduplicate) and prune plans (never to deduplicate against data about to be deleted). */
const READABLE = ["keys/", "index/", "gc/"];
/** What only a full key writes. */
const FULL_KEY_WRITES = [names.config, names.writeOnlyConfig, "keys/", "gc/"];

const readable = (name: string) => name === names.writeOnlyConfig || READABLE.some((p) => name.startsWith(p));

/**
 * The storage as a repository opened with a write-only key sees it. Every object lifeboat reads
 * or deletes with such a key goes through here, so this is where "a write-only host may list
 * keys/, index/ and gc/, read those and config.wo, add new objects and delete only the session
 * records it wrote itself" is enforced — whatever a caller asks for. (The storage credentials
 * of the host are another matter: give it an append-only server or Object Lock, docs/format.md.)
 * `stat` is allowed everywhere: it says whether an object exists (a parent snapshot the owner may
 * have forgotten), never what it holds.
 */
export function writeOnlyBackend(inner: Backend): Backend {
  const mine = new Set<string>();
  const wrapped: Backend = {
    location: inner.location,
    capabilities: inner.capabilities,
    exists: () => inner.exists(),
    create: () => inner.create(),
    async get(name, options) {
      if (!readable(name)) throw needsFullKey(`read ${name}`);
      return inner.get(name, options);
    },
    stat: (name) => inner.stat(name),
    async put(name, data, options) {
      if (
        options?.overwrite ||
        FULL_KEY_WRITES.some((p) => name === p || (p.endsWith("/") && name.startsWith(p)))
      )
        throw needsFullKey(`write ${name}`);
      await inner.put(name, data, options);
      if (name.startsWith("sessions/")) mine.add(name);
    },
    list(prefix): AsyncIterable<ObjectInfo> {
      if (!READABLE.some((p) => prefix.startsWith(p))) {
        return {
          [Symbol.asyncIterator]: () => ({
            next: () => Promise.reject(needsFullKey(`list ${prefix || "the repository"}`)),
          }),
        };
      }
      return inner.list(prefix);
    },
    async delete(name) {
      if (!mine.has(name)) throw needsFullKey(`delete ${name}`);
      await inner.delete(name);
      mine.delete(name);
    },
    close: () => inner.close(),
  };
  return wrapped;
}
