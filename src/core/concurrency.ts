/** A counting semaphore: at most `limit` holders at once, waiters served in order. */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Whether every slot is taken and callers are queued for one. */
  get saturated(): boolean {
    return this.waiting.length > 0;
  }

  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  async run<T>(f: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await f();
    } finally {
      this.release();
    }
  }
}

/**
 * Maps with at most `limit` calls in flight; results keep the input order. Once a call fails no
 * further item is started, and the first error is thrown when the calls in flight have settled:
 * nothing keeps running on behalf of a mapLimit that has returned (an aborted restore must not
 * go on writing files after it has thrown).
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  f: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        out[i] = await f(items[i]!, i);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw failed.error;
  return out;
}
