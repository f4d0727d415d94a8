import { AsyncLocalStorage } from "node:async_hooks";
import { existsSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type BetterSqlite3 from "better-sqlite3";
import { LifeboatError } from "../core/errors.js";

/**
 * The one local state store of `lifeboat run`, `lifeboat daemon` and `fleet run`: a SQLite file
 * (`$XDG_STATE_HOME/lifeboat/state.db`) holding the jobs' state and every fleet's tables (each
 * keyed by its fleet). WAL and a busy timeout let several processes use it at once; inside one
 * process every user of a file shares one connection, and its transactions queue one after the
 * other (two connections of one process would wait on each other's locks while blocking the
 * event loop, which is synchronous in better-sqlite3).
 */

export function localStateDir(): string {
  const state = process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(state, "lifeboat");
}

export function localStatePath(): string {
  return path.join(localStateDir(), "state.db");
}

/**
 * Where a fleet without an explicit `state` keeps its tables: the shared file, unless an earlier
 * version left the fleet a `fleet-NAME.db` of its own, which stays in use (docs/fleet.md, "State").
 */
export function defaultFleetStatePath(fleet: string): string {
  const legacy = path.join(localStateDir(), `fleet-${fleet}.db`);
  return existsSync(legacy) ? legacy : localStatePath();
}

/** One connection of this process to a state file; `release` closes it after its last user. */
export interface LocalDb {
  readonly file: string;
  readonly db: BetterSqlite3.Database;
  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE: other processes wait for it). Inside
   * `fn`, `exclusive` calls run at once; nested `tx` calls join the outer transaction.
   */
  tx<T>(fn: () => Promise<T> | T): Promise<T>;
  /** Runs `fn` when no transaction of this process is open on the connection (or inside ours). */
  exclusive<T>(fn: () => T): Promise<T>;
  release(): void;
}

interface Shared {
  db: BetterSqlite3.Database;
  users: number;
  chain: Promise<unknown>;
  inside: AsyncLocalStorage<true>;
}

const open = new Map<string, Shared>();

export async function openLocalDb(file: string, what = "the state file"): Promise<LocalDb> {
  const key = path.resolve(file);
  let s = open.get(key);
  if (!s) {
    mkdirSync(path.dirname(key), { recursive: true, mode: 0o700 });
    const { default: Database } = await import("better-sqlite3");
    // Another caller may have opened it while we awaited the import.
    s = open.get(key);
    if (!s) {
      let db: BetterSqlite3.Database;
      try {
        db = new Database(key);
        db.pragma("busy_timeout = 10000");
        db.pragma("journal_mode = WAL");
        db.pragma("synchronous = NORMAL");
      } catch (e) {
        throw new LifeboatError(
          "PERMISSION_DENIED",
          `${what} ${key} cannot be opened: ${(e as Error).message}`,
          "check its folder and permissions (or set XDG_STATE_HOME)",
        );
      }
      s = { db, users: 0, chain: Promise.resolve(), inside: new AsyncLocalStorage<true>() };
      open.set(key, s);
    }
  }
  const shared = s;
  shared.users++;
  let released = false;
  const queue = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = shared.chain.then(fn, fn);
    shared.chain = p.catch(() => {});
    return p;
  };
  return {
    file: key,
    db: shared.db,
    tx<T>(fn: () => Promise<T> | T): Promise<T> {
      if (shared.inside.getStore()) return Promise.resolve().then(fn);
      return queue(() =>
        shared.inside.run(true, async () => {
          shared.db.exec("BEGIN IMMEDIATE");
          try {
            const r = await fn();
            shared.db.exec("COMMIT");
            return r;
          } catch (e) {
            if (shared.db.inTransaction) shared.db.exec("ROLLBACK");
            throw e;
          }
        }),
      );
    },
    exclusive<T>(fn: () => T): Promise<T> {
      // Synchronous: no other transaction can begin between the check and the statement.
      if (shared.inside.getStore() || !shared.db.inTransaction) {
        try {
          return Promise.resolve(fn());
        } catch (e) {
          return Promise.reject(e);
        }
      }
      return queue(async () => fn());
    },
    release() {
      if (released) return;
      released = true;
      if (--shared.users > 0) return;
      open.delete(key);
      shared.db.close();
    },
  };
}
