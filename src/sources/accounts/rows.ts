import { createHash } from "node:crypto";
import type pg from "pg";
import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { VirtualEntry, VirtualSource } from "../../snapshot/source.js";
import { resolveSubpath } from "../../snapshot/subpath.js";
import { parsePostgresUrl, pgConnect } from "../postgres.js";

/**
 * An account's rows of a shared PostgreSQL database: one parameterised query per table
 * (`SELECT * FROM contacts WHERE owner = $1`, $1 is the account id), exported in one read-only
 * REPEATABLE READ transaction so the account is consistent with itself. Each table becomes
 * `rows/<table>.jsonl`, one `row_to_json` line per row in a stable order; a restore puts them
 * back with `json_populate_record`, so every column type round-trips through PostgreSQL itself.
 */
export interface RowsTable {
  /** The table rows are restored into (`contacts`, `public.contacts`). */
  table: string;
  /** The account's column: the export is `SELECT * FROM table WHERE owner = $1`, the restore
   * deletes `WHERE owner = $1` first. */
  owner?: string;
  /** A query of its own instead (`$1` is the account id). */
  query?: string;
  /** With `query`: how the account's rows are deleted before a restore (`$1` is the account id). */
  delete?: string;
}

export interface RowsAccount {
  /** postgres://USER[:PW]@HOST:PORT/DB */
  url: string;
  tables: RowsTable[];
  account: string;
}

const quoteIdent = (s: string) =>
  s
    .split(".")
    .map((p) => `"${p.replace(/"/g, '""')}"`)
    .join(".");

function target(url: string): {
  t: NonNullable<ReturnType<typeof parsePostgresUrl>>;
  db: string | undefined;
} {
  const t = parsePostgresUrl(url);
  if (!t)
    throw new LifeboatError(
      "USAGE",
      `rows accounts: ${JSON.stringify(url.replace(/:[^:@/]*@/, ":***@"))} is not a postgres:// URL`,
      "give the shared database as postgres://USER[:PASSWORD]@HOST:PORT/DATABASE",
    );
  return { t, db: t.database };
}

export function selectSql(t: RowsTable): string {
  if (t.query) return t.query;
  if (!t.owner)
    throw new LifeboatError(
      "USAGE",
      `rows table ${t.table}: no "owner" column and no "query"`,
      'give "owner": the column holding the account id (or "query" with $1)',
    );
  return `SELECT * FROM ${quoteIdent(t.table)} WHERE ${quoteIdent(t.owner)} = $1`;
}

function deleteSql(t: RowsTable): string {
  if (t.delete) return t.delete;
  if (t.owner) return `DELETE FROM ${quoteIdent(t.table)} WHERE ${quoteIdent(t.owner)} = $1`;
  throw new LifeboatError(
    "USAGE",
    `rows table ${t.table} has a custom query and no "delete" statement, so its rows cannot be restored into the shared table`,
    'add "delete": "DELETE FROM ... WHERE ... = $1" (or use "owner") to the table, or restore with --target DIR',
  );
}

const fileOf = (table: string) => `rows/${encodeURIComponent(table)}.jsonl`;
const tableOf = (file: string) => decodeURIComponent(file.replace(/^rows\//, "").replace(/\.jsonl$/, ""));

/** Runs `fn` in one read-only, repeatable-read transaction (one consistent view of the account). */
async function readOnly<T>(c: pg.Client, fn: () => Promise<T>): Promise<T> {
  await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  try {
    return await fn();
  } finally {
    await c.query("ROLLBACK").catch(() => {});
  }
}

/** The account's rows of every table, exported in one transaction. */
async function exportRows(c: pg.Client, a: RowsAccount): Promise<Map<string, string[]>> {
  return readOnly(c, async () => {
    const out = new Map<string, string[]>();
    for (const t of a.tables) {
      const r = await c.query<{ r: string }>(
        `SELECT row_to_json(x)::text AS r FROM (${selectSql(t)}) AS x ORDER BY 1`,
        [a.account],
      );
      out.set(
        t.table,
        r.rows.map((row) => row.r),
      );
    }
    return out;
  });
}

/** A cheap digest of the account's rows, computed by the server (nothing is transferred). */
export async function rowsFingerprint(a: RowsAccount, client?: pg.Client): Promise<string> {
  const c = client ?? (await connect(a.url));
  try {
    return await readOnly(c, async () => {
      const h = createHash("sha256");
      for (const t of a.tables) {
        const r = await c.query<{ d: string | null; n: string }>(
          `SELECT md5(string_agg(r, E'\\n' ORDER BY r)) AS d, count(*)::text AS n FROM (SELECT row_to_json(x)::text AS r FROM (${selectSql(t)}) AS x) AS y`,
          [a.account],
        );
        h.update(`${t.table}\0${r.rows[0]?.n}\0${r.rows[0]?.d ?? ""}\n`);
      }
      return `rows:${h.digest("hex").slice(0, 32)}`;
    });
  } finally {
    if (!client) await c.end().catch(() => {});
  }
}

export async function connect(url: string): Promise<pg.Client> {
  const { t, db } = target(url);
  return pgConnect(t, db);
}

/** The account's rows as a virtual source (`rows/<table>.jsonl`). */
export function rowsAccountSource(a: RowsAccount, client?: pg.Client): VirtualSource {
  const { t } = target(a.url);
  const counts: Record<string, number> = {};
  return {
    name: `rows:${t.display}#${a.account}`,
    type: "rows",
    async *entries(): AsyncIterable<VirtualEntry> {
      const c = client ?? (await connect(a.url));
      let rows: Map<string, string[]>;
      try {
        rows = await exportRows(c, a);
      } finally {
        if (!client) await c.end().catch(() => {});
      }
      yield { kind: "dir", path: "rows", mode: 0o700 };
      for (const [table, lines] of rows) {
        counts[table] = lines.length;
        const body = Buffer.from(lines.length > 0 ? `${lines.join("\n")}\n` : "", "utf8");
        yield {
          kind: "file",
          path: fileOf(table),
          mode: 0o600,
          read: async function* () {
            yield body;
          },
        };
      }
    },
    meta: () => ({ database: t.display, account: a.account, tables: a.tables, rows: counts }),
  };
}

/** The rows of a rows snapshot, per table (read from the repository). */
export async function snapshotRows(repo: Repository, snap: SnapshotWithId): Promise<Map<string, string[]>> {
  const dir = await resolveSubpath(repo, snap, "/rows");
  const out = new Map<string, string[]>();
  if (dir.kind !== "dir") return out;
  for (const n of (await repo.loadTree(dir.tree)).nodes) {
    if (n.type !== "file") continue;
    const parts: Buffer[] = [];
    for (const id of n.content ?? []) parts.push(await repo.loadBlob(Buffer.from(id, "hex")));
    const text = Buffer.concat(parts).toString("utf8");
    out.set(
      tableOf(`rows/${n.name}`),
      text.split("\n").filter((l) => l.length > 0),
    );
  }
  return out;
}

/** How many rows a table's `query` selects for the account (inside the caller's transaction). */
async function countSelected(c: pg.Client, t: RowsTable, account: string): Promise<number> {
  const r = await c.query(`SELECT count(*)::int AS n FROM (${selectSql(t)}) AS x`, [account]);
  return (r.rows[0] as { n: number }).n;
}

export interface RowsRestoreResult {
  tables: Record<string, number>;
  deleted: Record<string, number>;
}

/**
 * Puts an account's rows back into the shared tables, for that account alone: in one
 * transaction, per table, `DELETE ... WHERE owner = $1` and the snapshot's rows inserted again.
 * Rows of other accounts are never touched; a row of the snapshot that belongs to another
 * account (its owner column says so) is refused and nothing is changed.
 */
export async function restoreRowsAccount(
  repo: Repository,
  snap: SnapshotWithId,
  a: RowsAccount,
): Promise<RowsRestoreResult> {
  const rows = await snapshotRows(repo, snap);
  const c = await connect(a.url);
  const result: RowsRestoreResult = { tables: {}, deleted: {} };
  try {
    await c.query("BEGIN");
    // Constraints declared DEFERRABLE between the tables are checked at COMMIT, once every table is back.
    await c.query("SET CONSTRAINTS ALL DEFERRED");
    for (const t of a.tables) {
      const del = deleteSql(t);
      const lines = rows.get(t.table) ?? [];
      if (t.owner)
        for (const l of lines) {
          const v = (JSON.parse(l) as Record<string, unknown>)[t.owner];
          if (String(v) !== a.account)
            throw new LifeboatError(
              "CORRUPTION",
              `snapshot ${snap.id.slice(0, 8)} holds a ${t.table} row of another account (${t.owner} = ${JSON.stringify(v)})`,
              "nothing was changed; restore this snapshot with --target DIR and inspect it",
            );
        }
      // A custom `delete` must remove exactly the rows its `query` selects, nothing of another
      // account: counted before and after inside the transaction, which a mismatch rolls back.
      const selected = t.query ? await countSelected(c, t, a.account) : undefined;
      result.deleted[t.table] = (await c.query(del, [a.account])).rowCount ?? 0;
      if (selected !== undefined) {
        const left = await countSelected(c, t, a.account);
        if (result.deleted[t.table] !== selected)
          throw new LifeboatError(
            "USAGE",
            `the "delete" of table ${t.table} removed a different number of rows than its query selects for account ${a.account} (${result.deleted[t.table]} against ${selected}), so it would touch rows that are not the account's`,
            'nothing was changed; make "delete" remove exactly the rows "query" selects for $1',
          );
        if (left !== 0)
          throw new LifeboatError(
            "USAGE",
            `the "delete" of table ${t.table} leaves rows that its query still selects for account ${a.account}`,
            'nothing was changed; make "delete" remove exactly the rows "query" selects for $1',
          );
      }
      for (let i = 0; i < lines.length; i += 500) {
        const batch = `[${lines.slice(i, i + 500).join(",")}]`;
        await c.query(
          `INSERT INTO ${quoteIdent(t.table)} SELECT * FROM json_populate_recordset(NULL::${quoteIdent(t.table)}, $1::json)`,
          [batch],
        );
      }
      if (selected !== undefined) {
        const back = await countSelected(c, t, a.account);
        if (back !== lines.length)
          throw new LifeboatError(
            "USAGE",
            `after the restore, the query of table ${t.table} does not select exactly the snapshot's ${lines.length} row(s) for account ${a.account} (it selects ${back})`,
            'nothing was changed; check the joins and filters of the table\'s "query"',
          );
      }
      result.tables[t.table] = lines.length;
    }
    await c.query("COMMIT");
  } catch (e) {
    await c.query("ROLLBACK").catch(() => {});
    if (e instanceof LifeboatError) throw e;
    throw new LifeboatError(
      "STORAGE_ERROR",
      `restoring the rows of account ${a.account}: ${(e as Error).message}`,
      "nothing was changed (one transaction); check the table definitions against the snapshot",
    );
  } finally {
    await c.end().catch(() => {});
  }
  return result;
}
