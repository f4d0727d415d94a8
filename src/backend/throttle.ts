import type { Backend, GetOptions, PutOptions } from "./backend.js";

/** Bandwidth limits in bytes per second (undefined: unlimited). */
export interface Limits {
  upload?: number | undefined;
  download?: number | undefined;
}

/**
 * A token bucket shared by every request in one direction: concurrent uploads together stay
 * under the limit. A burst of one second is allowed, so small objects are not delayed.
 */
class Bucket {
  private tokens: number;
  private last = Date.now();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly rate: number) {
    this.tokens = rate;
  }

  take(n: number): Promise<void> {
    const next = this.queue.then(async () => {
      let need = n;
      while (need > 0) {
        const now = Date.now();
        this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
        this.last = now;
        const use = Math.min(need, Math.max(0, this.tokens));
        this.tokens -= use;
        need -= use;
        if (need > 0)
          await new Promise((r) =>
            setTimeout(r, Math.min(1000, (Math.min(need, this.rate) / this.rate) * 1000)),
          );
      }
    });
    this.queue = next;
    return next;
  }
}

/** Wraps a backend so uploads and downloads stay under the given rates (--limit-upload/-download). */
export function throttled(inner: Backend, limits: Limits): Backend {
  if (!limits.upload && !limits.download) return inner;
  const up = limits.upload ? new Bucket(limits.upload) : undefined;
  const down = limits.download ? new Bucket(limits.download) : undefined;
  return {
    ...inner,
    location: inner.location,
    capabilities: inner.capabilities,
    exists: () => inner.exists(),
    create: () => inner.create(),
    stat: (name: string) => inner.stat(name),
    list: (prefix: string) => inner.list(prefix),
    delete: (name: string) => inner.delete(name),
    close: () => inner.close(),
    async put(name: string, data: Buffer, options?: PutOptions) {
      await up?.take(data.length);
      return inner.put(name, data, options);
    },
    openWriter: inner.openWriter
      ? async (folder: string) => {
          const w = await inner.openWriter!(folder);
          return {
            async write(data: Uint8Array) {
              await up?.take(data.length);
              return w.write(data);
            },
            commit: (name: string) => w.commit(name),
            abort: () => w.abort(),
          };
        }
      : undefined,
    async get(name: string, options?: GetOptions) {
      const data = await inner.get(name, options);
      await down?.take(data.length);
      return data;
    },
  };
}

/** Parses a KiB/s figure from an option or environment variable. */
export function parseRate(v: string | undefined, what: string): number | undefined {
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`${what} ${JSON.stringify(v)} is not a positive number of KiB/s`);
  return n * 1024;
}
