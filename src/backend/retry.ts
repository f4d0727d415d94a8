import { LifeboatError } from "../core/errors.js";
import type { Backend, ObjectInfo } from "./backend.js";

export interface RetryOptions {
  /** Waits before each retry, in milliseconds; its length is the number of retries. */
  delays?: number[];
  /** Which errors are worth another try; default: UNREACHABLE (dropped or refused connections). */
  retryable?: (e: unknown) => boolean;
}

const defaultDelays = [250, 1000, 4000];

function isTransient(e: unknown): boolean {
  return e instanceof LifeboatError && e.code === "UNREACHABLE";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Retries a backend's operations after transient failures (a dropped connection, a server that
 * restarts), with growing waits and jitter. Every operation is safe to repeat: puts are atomic
 * and names are content-addressed (or written once), deletes of a missing name succeed. A list
 * that fails midway starts again and skips the names it already yielded.
 */
export function withRetries(inner: Backend, options: RetryOptions = {}): Backend {
  const delays = options.delays ?? defaultDelays;
  const retryable = options.retryable ?? isTransient;

  async function attempt<T>(fn: () => Promise<T>): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (e) {
        if (i >= delays.length || !retryable(e)) throw e;
        const d = delays[i]!;
        await sleep(d / 2 + Math.random() * d);
      }
    }
  }

  return {
    location: inner.location,
    capabilities: inner.capabilities,
    ...(inner.versions ? { versions: inner.versions } : {}),
    exists: () => attempt(() => inner.exists()),
    create: () => attempt(() => inner.create()),
    get: (name, opts) => attempt(() => inner.get(name, opts)),
    stat: (name) => attempt(() => inner.stat(name)),
    put: (name, data, opts) => attempt(() => inner.put(name, data, opts)),
    delete: (name) => attempt(() => inner.delete(name)),
    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      const seen = new Set<string>();
      for (let i = 0; ; i++) {
        try {
          for await (const o of inner.list(prefix)) {
            if (seen.has(o.name)) continue;
            seen.add(o.name);
            yield o;
          }
          return;
        } catch (e) {
          if (i >= delays.length || !retryable(e)) throw e;
          const d = delays[i]!;
          await sleep(d / 2 + Math.random() * d);
        }
      }
    },
    close: () => inner.close(),
  };
}
