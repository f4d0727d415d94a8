import { randomBytes } from "node:crypto";
import Database from "better-sqlite3";

/**
 * The database of `npm run bench:day`: about `mb` MiB, shaped like an application's:
 * - `docs`: the bulk (rows of ~1.3 KB, partly compressible), rarely changed: one random row every
 *   `1 / docRate` seconds;
 * - `ring`: an event log of fixed size written in a circle (one row per transaction, in place,
 *   so the database does not grow): a moving window of pages changes;
 * - `accounts`: a small hot table, two rows per transaction;
 * - `meta`: the number of the last transaction and its (simulated) time, to check restores.
 */
export interface DayDbOptions {
  mb: number;
  ringRows: number;
  accounts: number;
}

export function createDayDb(file: string, o: DayDbOptions): void {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = OFF");
  db.exec(`
    CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
    CREATE TABLE ring (id INTEGER PRIMARY KEY, seq INTEGER, t INTEGER, account INTEGER, amount INTEGER, note TEXT);
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
    CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
  `);
  const ringBytes = o.ringRows * 75;
  // Three documents fit a 4 KiB page.
  const docRows = Math.max(1000, Math.floor((o.mb * 1024 * 1024 - ringBytes) / 1360));
  const doc = db.prepare("INSERT INTO docs (body) VALUES (?)");
  for (let done = 0; done < docRows; ) {
    db.transaction(() => {
      for (let i = 0; i < 2000 && done < docRows; i++, done++) doc.run(docBody());
    })();
  }
  const ring = db.prepare("INSERT INTO ring (id, seq, t, account, amount, note) VALUES (?, 0, 0, 0, 0, ?)");
  db.transaction(() => {
    for (let i = 1; i <= o.ringRows; i++) ring.run(i, note());
  })();
  const acc = db.prepare("INSERT INTO accounts (id, balance) VALUES (?, 1000)");
  db.transaction(() => {
    for (let i = 1; i <= o.accounts; i++) acc.run(i);
  })();
  db.exec("INSERT INTO meta (k, v) VALUES ('seq', 0), ('t', 0)");
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
}

/** ~1.3 KB: 512 random hex digits (compress about 2:1) and text. */
function docBody(): string {
  return randomBytes(256).toString("hex") + "lorem ipsum dolor sit amet ".repeat(29);
}

/** 40 hex digits from a fast generator (crypto's randomBytes costs more than the transaction). */
let state = 0x9e3779b9;
function note(): string {
  let out = "";
  for (let i = 0; i < 5; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out += (state >>> 0).toString(16).padStart(8, "0");
  }
  return out;
}

/**
 * Commits the transactions of one interval. Each logical transaction moves an amount between two
 * accounts, writes the next ring row and the counter; `commits` of them are grouped per SQLite
 * commit (the same pages change as with one commit each, with far less WAL to read: the day is
 * about the repository, not about reading the WAL, which test/db/replicate.test.ts measures).
 */
export class DayWriter {
  private readonly db: Database.Database;
  seq = 0;
  private readonly move: Database.Statement;
  private readonly ring: Database.Statement;
  private readonly meta: Database.Statement;
  private readonly doc: Database.Statement;
  private docRows = 0;
  private docDebt = 0;

  constructor(
    file: string,
    private readonly o: DayDbOptions & { docRate: number },
  ) {
    this.db = new Database(file, { timeout: 60_000 });
    this.db.pragma("synchronous = OFF");
    // replicate checkpoints after shipping; an automatic checkpoint here would only race it.
    this.db.pragma("wal_autocheckpoint = 0");
    this.move = this.db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?");
    this.ring = this.db.prepare(
      "UPDATE ring SET seq = ?, t = ?, account = ?, amount = ?, note = ? WHERE id = ?",
    );
    this.meta = this.db.prepare("UPDATE meta SET v = ? WHERE k = ?");
    this.doc = this.db.prepare("UPDATE docs SET body = ? WHERE id = ?");
    this.docRows = (this.db.prepare("SELECT max(id) AS n FROM docs").get() as { n: number }).n;
    this.seq = (this.db.prepare("SELECT v FROM meta WHERE k = 'seq'").get() as { v: number }).v;
  }

  /** `n` transactions stamped `t`, in `commits` SQLite commits; plus the document updates due over `seconds`. */
  burst(n: number, commits: number, t: number, seconds: number): void {
    const per = Math.ceil(n / Math.max(1, commits));
    for (let done = 0; done < n; ) {
      const k = Math.min(per, n - done);
      this.db.transaction(() => {
        for (let i = 0; i < k; i++) {
          const seq = ++this.seq;
          const a = 1 + Math.floor(Math.random() * this.o.accounts);
          const b = 1 + Math.floor(Math.random() * this.o.accounts);
          const amount = 1 + Math.floor(Math.random() * 50);
          this.move.run(-amount, a);
          this.move.run(amount, b);
          this.ring.run(seq, t, a, amount, note(), 1 + (seq % this.o.ringRows));
        }
        this.meta.run(this.seq, "seq");
        this.meta.run(t, "t");
      })();
      done += k;
    }
    this.docDebt += seconds * this.o.docRate;
    while (this.docDebt >= 1) {
      this.docDebt--;
      this.doc.run(docBody(), 1 + Math.floor(Math.random() * this.docRows));
    }
  }

  close(): void {
    this.db.close();
  }
}

/** The transaction number and time a (restored) database holds. */
export function dayState(file: string): { seq: number; t: number } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const seq = (db.prepare("SELECT v FROM meta WHERE k = 'seq'").get() as { v: number }).v;
    const t = (db.prepare("SELECT v FROM meta WHERE k = 't'").get() as { v: number }).v;
    return { seq, t };
  } finally {
    db.close();
  }
}
