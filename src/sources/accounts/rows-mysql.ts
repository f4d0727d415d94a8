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
 * the account's rows (`WHERE owner = id`) as one JSON object per line, every value as text
 * (`CAST(... AS CHAR)`, so DECIMAL, BIGINT and dates keep every digit) and binary columns as
 * hex; all tables exported in one `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`. A
 * restore deletes the account's rows and inserts the snapshot's again, in one transaction, the
 * server converting each text value back into its column's type.
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

function ownerOf(t: RowsTable): string {
  if (t.query || !t.owner)
    throw new LifeboatError(
      "USAGE",
      `rows table ${t.table}: on MariaDB/MySQL a table needs "owner" (its account column); a custom "query" is PostgreSQL only`,
      'give "owner": the column holding the account id',
    );
  return t.owner;
}

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

const selectRows = (t: RowsTable, cols: Column[], id: string) =>
  `SELECT ${jsonOf(cols)} AS j FROM ${qualified(t.table)} WHERE ${ident(ownerOf(t))} = ${strLit(id)} ORDER BY j`;

/** The account's rows of every table, in one consistent read-only transaction. */
async function exportRows(a: RowsAccount): Promise<Map<string, string[]>> {
  const t = mysqlTarget(a.url);
  const cols = new Map<string, Column[]>();
  for (const tb of a.tables) cols.set(tb.table, await columns(t, tb.table));
  const marker = (i: number) => `-- lifeboat table ${i}`;
  const sql = [
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    ...a.tables.flatMap((tb, i) => [
      `SELECT ${strLit(marker(i))}`,
      selectRows(tb, cols.get(tb.table)!, a.account),
    ]),
    "COMMIT",
  ].join(";\n");
  const out = new Map<string, string[]>(a.tables.map((tb) => [tb.table, []]));
  let cur: string[] | undefined;
  for (const [field] of await query(t, sql)) {
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
  ];
  for (const tb of a.tables) {
    const cols = await columns(t, tb.table);
    parts.push(
      `SELECT COUNT(*), COALESCE(SHA2(GROUP_CONCAT(j ORDER BY j SEPARATOR '\\n'), 256), '') FROM (${selectRows(tb, cols, a.account)}) AS y`,
    );
  }
  parts.push("COMMIT");
  const rows = await query(t, parts.join(";\n"));
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

/**
 * Puts an account's rows back into the shared MariaDB/MySQL tables, for that account alone, in
 * one transaction (the client stops at the first error and the server rolls the transaction
 * back when the connection ends). A snapshot row of another account is refused first.
 */
export async function restoreMysqlRowsAccount(
  repo: Repository,
  snap: SnapshotWithId,
  a: RowsAccount,
): Promise<RowsRestoreResult> {
  const rows = await snapshotRows(repo, snap);
  const t = mysqlTarget(a.url);
  const result: RowsRestoreResult = { tables: {}, deleted: {} };
  const sql: string[] = ["START TRANSACTION"];
  for (const tb of a.tables) {
    const owner = ownerOf(tb);
    const cols = await columns(t, tb.table);
    const lines = rows.get(tb.table) ?? [];
    sql.push(`DELETE FROM ${qualified(tb.table)} WHERE ${ident(owner)} = ${strLit(a.account)}`);
    sql.push(`SELECT ROW_COUNT()`);
    for (const l of lines) {
      const r = JSON.parse(l) as Record<string, string | null>;
      if (r[owner] !== a.account)
        throw new LifeboatError(
          "CORRUPTION",
          `snapshot ${snap.id.slice(0, 8)} holds a ${tb.table} row of another account (${owner} = ${JSON.stringify(r[owner])})`,
          "nothing was changed; restore this snapshot with --target DIR and inspect it",
        );
      const present = cols.filter((c) => c.name in r);
      sql.push(
        `INSERT INTO ${qualified(tb.table)} (${present.map((c) => ident(c.name)).join(", ")}) VALUES (${present
          .map((c) => {
            const v = r[c.name];
            if (v === null || v === undefined) return "NULL";
            return c.binary ? `UNHEX(${strLit(v)})` : strLit(v);
          })
          .join(", ")})`,
      );
    }
    result.tables[tb.table] = lines.length;
  }
  sql.push("COMMIT");
  try {
    const out = await query(t, sql.join(";\n"));
    a.tables.forEach((tb, i) => {
      result.deleted[tb.table] = Number(out[i]?.[0] ?? 0);
    });
  } catch (e) {
    throw new LifeboatError(
      "STORAGE_ERROR",
      `restoring the rows of account ${a.account}: ${(e as Error).message.split("\n")[0]}`,
      "nothing was changed (one transaction); check the table definitions against the snapshot",
    );
  }
  return result;
}
