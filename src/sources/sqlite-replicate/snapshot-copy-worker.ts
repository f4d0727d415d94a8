/**
 * Worker side of SnapshotCopy (snapshot-copy.ts): opens the database, and on "begin" starts a
 * read transaction, copies the database from it with the online backup API, ends the read
 * transaction, and checks and describes the copy. On a thread of its own, so the replicator's
 * event loop keeps shipping WAL segments while a large database is copied and checked.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { describeDatabase } from "../sqlite.js";
import type { CopyReply, CopyRequest } from "./snapshot-copy.js";

const { dbPath, file, timeoutMs } = workerData as { dbPath: string; file: string; timeoutMs: number };
const port = parentPort!;
const send = (m: CopyReply) => port.postMessage(m);
const failed = (e: unknown) =>
  send({ op: "failed", message: (e as Error).message ?? String(e), code: (e as { code?: string }).code });

let db: Database.Database | undefined;
try {
  db = new Database(dbPath, { fileMustExist: true, timeout: timeoutMs });
  // This connection never writes; this only keeps a stray auto-checkpoint from running here.
  db.pragma("wal_autocheckpoint = 0");
  send({ op: "ready" });
} catch (e) {
  failed(e);
}

port.once("message", async (m: CopyRequest) => {
  if (m.op !== "begin" || !db) return;
  try {
    db.exec("BEGIN");
    // BEGIN is deferred: the first read starts the read transaction (and takes a read mark).
    db.prepare("SELECT count(*) FROM sqlite_schema").get();
    send({ op: "reading" });
    const t0 = Date.now();
    // The backup API reads inside the read transaction this connection holds, in one step.
    await db.backup(file, { progress: () => 0x7fffffff });
    const copySeconds = (Date.now() - t0) / 1000;
    db.exec("COMMIT");
    db.close();
    send({ op: "copied" });
    const copy = new Database(file, { fileMustExist: true });
    try {
      const check = String(copy.pragma("quick_check", { simple: true }));
      send({ op: "done", copySeconds, check, facts: describeDatabase(copy) });
    } finally {
      copy.close();
    }
  } catch (e) {
    failed(e);
  }
});
