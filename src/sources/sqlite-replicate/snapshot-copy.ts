import { Worker } from "node:worker_threads";
import { dbError } from "../child-stream.js";
import type { SqliteFacts } from "../sqlite.js";

/** Messages to and from snapshot-copy-worker.ts. */
export type CopyRequest = { op: "begin" };
export type CopyReply =
  | { op: "ready" }
  | { op: "reading" }
  | { op: "copied" }
  | { op: "done"; copySeconds: number; check: string; facts: SqliteFacts }
  | { op: "failed"; message: string; code?: string | undefined };

export interface CopyResult {
  copySeconds: number;
  /** PRAGMA quick_check of the copy ("ok" when sound). */
  check: string;
  facts: SqliteFacts;
}

/**
 * The copy of the database a generation's full snapshot is made of, taken on a worker thread.
 * `start` opens the worker's connection; `beginRead`, called while the replicator holds the
 * write lock, makes the worker begin its read transaction, so the copy is exactly the state at
 * that WAL position; `result` resolves once the copy is complete and checked. The replicator's
 * own connections and event loop meanwhile go on reading and shipping the WAL after that
 * position; SQLite checkpoints nothing past the worker's read mark until the copy is done
 * (`holding`).
 */
export class SnapshotCopy {
  /** True while the worker's read transaction is open (from `beginRead` to the end of the copy). */
  holding = false;
  private readonly inbox: CopyReply[] = [];
  private waiter: ((m: CopyReply) => void) | undefined;
  private finished = false;

  private constructor(
    private readonly worker: Worker,
    private readonly dbPath: string,
  ) {
    worker.on("message", (m: CopyReply) => this.deliver(m));
    worker.on("error", (e) => this.deliver({ op: "failed", message: e.message }));
    worker.on("exit", (code) => {
      if (!this.finished)
        this.deliver({ op: "failed", message: `the copy's worker thread exited (${code})` });
    });
  }

  /** Starts the worker and waits until its connection is open (before any lock is taken). */
  static async start(dbPath: string, file: string, timeoutMs: number): Promise<SnapshotCopy> {
    const worker = new Worker(new URL("./snapshot-copy-worker.js", import.meta.url), {
      workerData: { dbPath, file, timeoutMs },
    });
    const c = new SnapshotCopy(worker, dbPath);
    try {
      await c.expect("ready");
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  /** Begins the worker's read transaction; resolves once it holds it. */
  async beginRead(): Promise<void> {
    this.worker.postMessage({ op: "begin" } satisfies CopyRequest);
    await this.expect("reading");
    this.holding = true;
  }

  /** Waits for the copy and its check; the worker has ended its read transaction by then. */
  async result(): Promise<CopyResult> {
    await this.expect("copied");
    const done = await this.expect("done");
    return { copySeconds: done.copySeconds, check: done.check, facts: done.facts };
  }

  /** Ends the worker (its connection and any read transaction with it). */
  async stop(): Promise<void> {
    const running = !this.finished;
    this.finished = true;
    this.holding = false;
    await this.worker.terminate();
    // Whoever still waits for the copy learns that there will be none.
    if (running) this.deliver({ op: "failed", message: "stopped" });
  }

  private deliver(m: CopyReply): void {
    if (m.op === "copied") this.holding = false;
    if (m.op === "done") this.finished = true;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w(m);
    } else this.inbox.push(m);
  }

  private async expect<Op extends CopyReply["op"]>(op: Op): Promise<Extract<CopyReply, { op: Op }>> {
    const m =
      this.inbox.shift() ??
      (await new Promise<CopyReply>((r) => {
        this.waiter = r;
      }));
    if (m.op === "failed") {
      this.holding = false;
      throw dbError(
        "SOURCE_UNREADABLE",
        `${this.dbPath}: cannot copy the database for a full snapshot (${m.message})`,
      );
    }
    if (m.op !== op) throw new Error(`snapshot copy: expected ${op}, got ${m.op}`);
    return m as Extract<CopyReply, { op: Op }>;
  }
}
