import { createHash } from "node:crypto";
import { LifeboatError } from "../../core/errors.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import type { VirtualEntry, VirtualSource } from "../../snapshot/source.js";
import { type MysqlTarget, mysqlQuery } from "../mysql.js";
import { mysqlTarget } from "./mysql-list.js";
import type { RowsAccount, RowsRestoreResult, RowsTable } from "./rows.js";
import { snapshotRows } from "./rows.js";

/**
 * Rows accounts on a shared MariaDB/MySQL database, through the `mariadb` client: per table,
 * the account's rows (`WHERE owner = ?`, or the table's own `query` with MySQL's `?`
 * placeholders) as one JSON object per line, every value as text (`CAST(... AS CHAR)`, so
 * DECIMAL, BIGINT and dates keep every digit) and binary columns as hex; all tables exported in
 * one `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`. The account id is bound to the
 * placeholders by the server (PREPARE ... EXECUTE USING), never spliced into the query. A restore
 * deletes the account's rows and inserts the snapshot's again, in one transaction, the server
 * converting each text value back into its column's type.
 */

/** A string literal that needs no escaping: the UTF-8 bytes in hex. */
const lit = (s: string) => `CONVERT(0x${Buffer.from(s, "utf8").toString("hex")} USING utf8mb4)`;
const strLit = (s: string) => (s === "" ? "''" : lit(s));
const ident = (s: string) => `\`${s.replace(/`/g, "``")}\``;
const qualified = (t: string) => t.split(".").map(ident).join(".");
const BINARY = new Set(["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"]);

/** Undoes the client's batch-mode escaping (\\t, \\n, \\0, \\\\). */
const unbatch = (s: string) =>
  s.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : c === "0" ? "\0" : c));

/** SQL through the client, in the URL's database, text in UTF-8 both ways. */
const query = (t: MysqlTarget, sql: string) => mysqlQuery(t, `SET NAMES utf8mb4;\n${sql}`, t.database);

interface Column {
  name: string;
  binary: boolean;
}

/** How many `?` placeholders a statement has (outside strings, quoted names and comments). */
export function placeholders(sql: string): number {
  let n = 0;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === "`") {
      for (i++; i < sql.length && sql[i] !== c; i++) if (sql[i] === "\\" && c !== "`") i++;
    } else if (c === "#" || (c === "-" && sql.startsWith("-- ", i))) {
      while (i < sql.length && sql[i] !== "\n") i++;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === "?") n++;
  }
  return n;
}

/** A table's statement with its placeholders counted; one without any is refused. */
function statement(t: RowsTable, what: "query" | "delete", sql: string): { sql: string; n: number } {
  const text = sql.trim().replace(/;\s*$/, "");
  const n = placeholders(text);
  if (n === 0)
    throw new LifeboatError(
      "USAGE",
      `rows table ${t.table}: its "${what}" has no ? placeholder for the account id${/\$1\b/.test(text) ? " ($1 is PostgreSQL's; MariaDB/MySQL use ?)" : ""}`,
      `write the account id as ? in "${what}", e.g. ${what === "query" ? `SELECT * FROM ${t.table} WHERE owner = ?` : `DELETE FROM ${t.table} WHERE owner = ?`}`,
    );
  return { sql: text, n };
}

/** The statement selecting the account's rows of a table (`?` is the account id). */
function selectOf(t: RowsTable): { sql: string; n: number } {
  if (t.query) return statement(t, "query", t.query);
  if (!t.owner)
    throw new LifeboatError(
      "USAGE",
      `rows table ${t.table}: no "owner" column and no "query"`,
      'give "owner": the column holding the account id (or "query" with ?)',
    );
  return { sql: `SELECT * FROM ${qualified(t.table)} WHERE ${ident(t.owner)} = ?`, n: 1 };
}

/**
 * The statement deleting the account's rows before a restore, by PostgreSQL's rule (rows.ts):
 * the table's own `delete`, else `WHERE owner = ?`; a custom query without a `delete` cannot be
 * restored into the shared table.
 */
function deleteOf(t: RowsTable): { sql: string; n: number } {
  if (t.delete) return statement(t, "delete", t.delete);
  if (t.owner) return { sql: `DELETE FROM ${qualified(t.table)} WHERE ${ident(t.owner)} = ?`, n: 1 };
  throw new LifeboatError(
    "USAGE",
    `rows table ${t.table} has a custom query and no "delete" statement, so its rows cannot be restored into the shared table`,
    'add "delete": "DELETE FROM ... WHERE ... = ?" (or use "owner") to the table, or restore with --target DIR',
  );
}

/**
 * Statements running `sql` prepared, each `?` bound to the account id (`@lifeboat_id`); `after`
 * runs right after it (ROW_COUNT() is the statement's only until the next one).
 */
function prepared(q: { sql: string; n: number }, after: string[] = []): string[] {
  return [
    `SET @lifeboat_q = ${lit(q.sql)}`,
    "PREPARE lifeboat_q FROM @lifeboat_q",
    `EXECUTE lifeboat_q USING ${Array.from({ length: q.n }, () => "@lifeboat_id").join(", ")}`,
    ...after,
    "DEALLOCATE PREPARE lifeboat_q",
  ];
}

const setId = (id: string) => `SET @lifeboat_id = ${strLit(id)}`;

async function columns(t: MysqlTarget, table: string): Promise<Column[]> {
  const [schema, name] = table.includes(".") ? table.split(".", 2) : [undefined, table];
  const rows = await query(
    t,
    `SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ${schema ? strLit(schema) : "DATABASE()"} AND TABLE_NAME = ${strLit(name!)} ORDER BY ORDINAL_POSITION`,
  );
  if (rows.length === 0)
    throw new LifeboatError(
      "NOT_FOUND",
      `rows table ${table} does not exist in ${t.display}`,
      "check the table names of the fleet's rows.tables",
    );
  return rows.map(([n, type]) => ({ name: unbatch(n!), binary: BINARY.has((type ?? "").toLowerCase()) }));
}

/** `JSON_OBJECT(...)` of a row: text values, binary ones in hex. */
function jsonOf(cols: Column[]): string {
  return `JSON_OBJECT(${cols
    .map((c) => `${strLit(c.name)}, ${c.binary ? `HEX(${ident(c.name)})` : `CAST(${ident(c.name)} AS CHAR)`}`)
    .join(", ")})`;
}

/** The account's rows of a table as JSON lines, in a stable order (`?`: the account id). */
const selectRows = (t: RowsTable, cols: Column[]) => {
  const q = selectOf(t);
  return { sql: `SELECT ${jsonOf(cols)} AS j FROM (${q.sql}) AS lifeboat_x ORDER BY j`, n: q.n };
};

/** A custom query's failure says what the query must return. */
function queryError(a: RowsAccount, e: unknown): unknown {
  if (!(e instanceof LifeboatError) || !a.tables.some((t) => t.query)) return e;
  return new LifeboatError(
    e.code,
    `rows of account ${a.account}: ${e.message}`,
    "a table's \"query\" must return the table's rows, every column of it (e.g. SELECT contacts.* FROM contacts JOIN ... WHERE ... = ?)",
    e,
  );
}

/** The account's rows of every table, in one consistent read-only transaction. */
async function exportRows(a: RowsAccount): Promise<Map<string, string[]>> {
  const t = mysqlTarget(a.url);
  const cols = new Map<string, Column[]>();
  for (const tb of a.tables) cols.set(tb.table, await columns(t, tb.table));
  const marker = (i: number) => `-- lifeboat table ${i}`;
  const sql = [
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    setId(a.account),
    ...a.tables.flatMap((tb, i) => [
      `SELECT ${strLit(marker(i))}`,
      ...prepared(selectRows(tb, cols.get(tb.table)!)),
    ]),
    "COMMIT",
  ].join(";\n");
  const out = new Map<string, string[]>(a.tables.map((tb) => [tb.table, []]));
  let cur: string[] | undefined;
  let result: string[][];
  try {
    result = await query(t, sql);
  } catch (e) {
    throw queryError(a, e);
  }
  for (const [field] of result) {
    const v = unbatch(field ?? "");
    const m = /^-- lifeboat table (\d+)$/.exec(v);
    if (m) cur = out.get(a.tables[Number(m[1])]!.table);
    else cur?.push(v);
  }
  return out;
}

/** A digest of the account's rows computed by the server (only the digest is transferred). */
export async function mysqlRowsFingerprint(a: RowsAccount): Promise<string> {
  const t = mysqlTarget(a.url);
  const parts: string[] = [
    "SET SESSION group_concat_max_len = 4294967295",
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    setId(a.account),
  ];
  for (const tb of a.tables) {
    const rows = selectRows(tb, await columns(t, tb.table));
    parts.push(
      ...prepared({
        sql: `SELECT COUNT(*), COALESCE(SHA2(GROUP_CONCAT(j ORDER BY j SEPARATOR '\\n'), 256), '') FROM (${rows.sql}) AS y`,
        n: rows.n,
      }),
    );
  }
  parts.push("COMMIT");
  let rows: string[][];
  try {
    rows = await query(t, parts.join(";\n"));
  } catch (e) {
    throw queryError(a, e);
  }
  const h = createHash("sha256");
  rows.forEach((r, i) => {
    h.update(`${a.tables[i]?.table}\0${r.join("\0")}\n`);
  });
  return `rows:${h.digest("hex").slice(0, 32)}`;
}

/** The account's rows as a virtual source (`rows/<table>.jsonl`), as for PostgreSQL. */
export function mysqlRowsSource(a: RowsAccount): VirtualSource {
  const t = mysqlTarget(a.url);
  const counts: Record<string, number> = {};
  return {
    name: `rows:${t.display}#${a.account}`,
    type: "rows",
    async *entries(): AsyncIterable<VirtualEntry> {
      const rows = await exportRows(a);
      yield { kind: "dir", path: "rows", mode: 0o700 };
      for (const [table, lines] of rows) {
        counts[table] = lines.length;
        const body = Buffer.from(lines.length > 0 ? `${lines.join("\n")}\n` : "", "utf8");
        yield {
          kind: "file",
          path: `rows/${encodeURIComponent(table)}.jsonl`,
          mode: 0o600,
          read: async function* () {
            yield body;
          },
        };
      }
    },
    meta: () => ({
      database: t.display,
      engine: "mysql",
      account: a.account,
      tables: a.tables,
      rows: counts,
    }),
  };
}

/** One statement of a restore script; a check fails the script (and so the transaction) when false. */
interface Step {
  sql: string;
  check?: string;
}

/** A statement that fails (error 1242) unless `cond` holds: the client stops, nothing commits. */
const guard = (cond: string, check: string): Step => ({
  sql: `SELECT (SELECT 1 UNION ALL SELECT 2 FROM DUAL WHERE NOT (${cond})) INTO @lifeboat_ok`,
  check,
});

/**
 * Puts an account's rows back into the shared MariaDB/MySQL tables, for that account alone, in
 * one transaction (the client stops at the first error and the server rolls the transaction
 * back when the connection ends). A snapshot row of another account (its `owner` says so) is
 * refused first. Per table, by the account's own select statement: the delete must remove
 * exactly the rows it selects (no more: they would be another account's), none may be left, and
 * afterwards it selects exactly the snapshot's rows; otherwise nothing is changed.
 */
export async function restoreMysqlRowsAccount(
  repo: Repository,
  snap: SnapshotWithId,
  a: RowsAccount,
): Promise<RowsRestoreResult> {
  const rows = await snapshotRows(repo, snap);
  const t = mysqlTarget(a.url);
  const result: RowsRestoreResult = { tables: {}, deleted: {} };
  const steps: Step[] = [{ sql: "START TRANSACTION" }, { sql: setId(a.account) }];
  const plain = (sql: string[]) => sql.map((q) => ({ sql: q }));
  for (const tb of a.tables) {
    const sel = selectOf(tb);
    const del = deleteOf(tb);
    const cols = await columns(t, tb.table);
    const lines = rows.get(tb.table) ?? [];
    const count = (into: string) =>
      plain(prepared({ sql: `SELECT COUNT(*) INTO ${into} FROM (${sel.sql}) AS lifeboat_x`, n: sel.n }));
    steps.push(...count("@lifeboat_selected"));
    steps.push(...plain(prepared(del, ["SELECT ROW_COUNT() INTO @lifeboat_deleted"])));
    steps.push({ sql: "SELECT @lifeboat_deleted" });
    steps.push(
      guard(
        "@lifeboat_deleted <=> @lifeboat_selected",
        `the "delete" of table ${tb.table} removed a different number of rows than its query selects for account ${a.account}, so it would touch rows that are not the account's`,
      ),
    );
    steps.push(...count("@lifeboat_left"));
    steps.push(
      guard(
        "@lifeboat_left = 0",
        `the "delete" of table ${tb.table} leaves rows that its query still selects for account ${a.account}`,
      ),
    );
    for (const l of lines) {
      const r = JSON.parse(l) as Record<string, string | null>;
      if (tb.owner && r[tb.owner] !== a.account)
        throw new LifeboatError(
          "CORRUPTION",
          `snapshot ${snap.id.slice(0, 8)} holds a ${tb.table} row of another account (${tb.owner} = ${JSON.stringify(r[tb.owner])})`,
          "nothing was changed; restore this snapshot with --target DIR and inspect it",
        );
      const present = cols.filter((c) => c.name in r);
      steps.push({
        sql: `INSERT INTO ${qualified(tb.table)} (${present.map((c) => ident(c.name)).join(", ")}) VALUES (${present
          .map((c) => {
            const v = r[c.name];
            if (v === null || v === undefined) return "NULL";
            return c.binary ? `UNHEX(${strLit(v)})` : strLit(v);
          })
          .join(", ")})`,
      });
    }
    steps.push(...count("@lifeboat_restored"));
    steps.push(
      guard(
        `@lifeboat_restored = ${lines.length}`,
        `after the restore, the query of table ${tb.table} does not select exactly the snapshot's ${lines.length} row(s) for account ${a.account} (a restored row is not the account's by its query, or another row is)`,
      ),
    );
    result.tables[tb.table] = lines.length;
  }
  steps.push({ sql: "COMMIT" });
  try {
    const out = await query(t, steps.map((s) => s.sql).join(";\n"));
    a.tables.forEach((tb, i) => {
      result.deleted[tb.table] = Number(out[i]?.[0] ?? 0);
    });
  } catch (e) {
    const failed = failedCheck(steps, (e as Error).message);
    if (failed)
      throw new LifeboatError(
        "USAGE",
        `restoring the rows of account ${a.account}: ${failed}; nothing was changed`,
        'make the table\'s "delete" remove exactly the rows its "query" selects for the account (or use "owner"), or restore with --target DIR',
      );
    throw new LifeboatError(
      "STORAGE_ERROR",
      `restoring the rows of account ${a.account}: ${(e as Error).message.split("\n")[0]}`,
      "nothing was changed (one transaction); check the table definitions against the snapshot",
    );
  }
  return result;
}

/** The check whose statement failed, from the client's "ERROR 1242 ... at line N". */
function failedCheck(steps: Step[], message: string): string | undefined {
  const m = /ERROR 1242 \(21000\) at line (\d+)/.exec(message);
  if (!m) return undefined;
  const line = Number(m[1]);
  // `query` puts one line (SET NAMES) before the script; statements are joined by ";\n".
  let start = 2;
  for (const s of steps) {
    const end = start + (s.sql.match(/\n/g)?.length ?? 0);
    if (line >= start && line <= end) return s.check;
    start = end + 1;
  }
  return undefined;
}
