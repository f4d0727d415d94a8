import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { isLifeboatError } from "../../core/errors.js";
import type { BackupProgress } from "../../snapshot/progress.js";
import type { TaskKind, TaskState, TaskView } from "./api-types.js";

/**
 * Long work started from the console (restores, drills, checks, backups) or by the daemon beside
 * it: each is a task with a phase, progress and an outcome, which the page follows through
 * server-sent events. Backups run one at a time (queued behind each other, as the daemon runs
 * jobs); the queue is the backlog the activity page shows, each item with why it waits. A task
 * as the API answers it is a TaskView (api-types.ts).
 */
export type { TaskKind, TaskProgress, TaskState, TaskView } from "./api-types.js";

export interface TaskControl {
  signal: AbortSignal;
  phase(text: string): void;
  progress(p: BackupProgress): void;
  accounts(done: number, total: number | null, failed: number): void;
}

interface Task extends TaskView {
  controller: AbortController;
  exclusive: boolean;
}

/** Finished tasks kept for the activity page. */
const KEPT_FINISHED = 50;

export class Tasks {
  private readonly tasks = new Map<string, Task>();
  private readonly events = new EventEmitter();
  /** Exclusive tasks (backups) run in this order, one at a time. */
  private queue: Promise<void> = Promise.resolve();
  private exclusiveRunning: Task | undefined;

  constructor() {
    this.events.setMaxListeners(0);
  }

  list(): TaskView[] {
    return [...this.tasks.values()].map(view).reverse();
  }

  get(id: string): TaskView | undefined {
    const t = this.tasks.get(id);
    return t ? view(t) : undefined;
  }

  /** Calls `fn` with every change of a task (until it finishes); returns the unsubscribe. */
  follow(id: string, fn: (t: TaskView) => void): () => void {
    const listener = (t: TaskView) => fn(t);
    this.events.on(id, listener);
    return () => this.events.off(id, listener);
  }

  cancel(id: string): boolean {
    const t = this.tasks.get(id);
    if (!t || !t.cancellable || (t.state !== "running" && t.state !== "queued")) return false;
    t.controller.abort();
    if (t.state === "queued") this.finish(t, "cancelled", null, null);
    else t.phase = "cancelling";
    this.emit(t);
    return true;
  }

  /**
   * Starts a task. `exclusive` ones wait for each other (the backlog); the others start at
   * once. Returns the task as it is when queued or started.
   */
  start(
    o: {
      kind: TaskKind;
      title: string;
      user: string;
      repo: string | null;
      exclusive?: boolean;
      cancellable?: boolean;
    },
    run: (ctl: TaskControl) => Promise<unknown>,
  ): TaskView {
    const t: Task = {
      id: randomBytes(8).toString("hex"),
      kind: o.kind,
      title: o.title,
      user: o.user,
      repo: o.repo,
      state: "queued",
      phase: "queued",
      waiting: null,
      created: new Date().toISOString(),
      started: null,
      finished: null,
      progress: null,
      accounts: null,
      cancellable: o.cancellable ?? true,
      result: null,
      error: null,
      controller: new AbortController(),
      exclusive: o.exclusive ?? false,
    };
    this.tasks.set(t.id, t);
    this.trim();
    const go = () => this.run(t, run);
    if (t.exclusive) {
      t.waiting = this.exclusiveRunning ? `waiting for ${this.exclusiveRunning.title}` : null;
      this.queue = this.queue.then(go, go);
    } else void go();
    return view(t);
  }

  /** Runs `fn` as a task (for work started elsewhere, e.g. the daemon's jobs) and returns its result. */
  track<T>(
    o: { kind: TaskKind; title: string; user: string; repo: string | null; exclusive?: boolean },
    fn: (ctl: TaskControl) => Promise<T>,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.start({ ...o, cancellable: false }, async (ctl) => {
        try {
          const r = await fn(ctl);
          resolve(r);
          return r;
        } catch (e) {
          reject(e);
          throw e;
        }
      });
    });
  }

  private async run(t: Task, fn: (ctl: TaskControl) => Promise<unknown>): Promise<void> {
    if (t.state !== "queued") return; // cancelled while it waited
    if (t.exclusive) this.exclusiveRunning = t;
    for (const other of this.tasks.values())
      if (other.exclusive && other.state === "queued" && other !== t) {
        other.waiting = `waiting for ${t.title}`;
        this.emit(other);
      }
    t.state = "running";
    t.waiting = null;
    t.started = new Date().toISOString();
    t.phase = "starting";
    this.emit(t);
    const ctl: TaskControl = {
      signal: t.controller.signal,
      phase: (text) => {
        t.phase = text;
        this.emit(t);
      },
      progress: (p) => {
        t.progress = {
          filesDone: p.filesDone,
          bytesDone: p.bytesDone,
          totalFiles: p.totalFiles ?? null,
          totalBytes: p.totalBytes ?? null,
          bytesPerSecond: Math.round(p.rate),
          etaSeconds: p.etaSeconds === undefined ? null : Math.round(p.etaSeconds),
        };
        this.emit(t);
      },
      accounts: (done, total, failed) => {
        t.accounts = { done, total, failed };
        this.emit(t);
      },
    };
    try {
      const result = await fn(ctl);
      this.finish(t, t.controller.signal.aborted ? "cancelled" : "done", result ?? null, null);
    } catch (e) {
      const cancelled = t.controller.signal.aborted;
      this.finish(
        t,
        cancelled ? "cancelled" : "failed",
        null,
        cancelled
          ? null
          : {
              code: isLifeboatError(e) ? e.code : "FAILED",
              message: e instanceof Error ? e.message : String(e),
              hint: isLifeboatError(e) ? (e.hint ?? null) : null,
            },
      );
    } finally {
      if (this.exclusiveRunning === t) this.exclusiveRunning = undefined;
    }
  }

  private finish(t: Task, state: TaskState, result: unknown, error: TaskView["error"]): void {
    t.state = state;
    t.phase = state;
    t.waiting = null;
    t.finished = new Date().toISOString();
    t.result = result;
    t.error = error;
    this.emit(t);
  }

  private emit(t: Task): void {
    this.events.emit(t.id, view(t));
  }

  private trim(): void {
    const done = [...this.tasks.values()].filter((t) => t.finished !== null);
    for (const t of done.slice(0, Math.max(0, done.length - KEPT_FINISHED))) this.tasks.delete(t.id);
  }
}

function view(t: Task): TaskView {
  const { controller: _c, exclusive: _e, ...rest } = t;
  return {
    ...rest,
    progress: rest.progress ? { ...rest.progress } : null,
    accounts: rest.accounts ? { ...rest.accounts } : null,
  };
}
