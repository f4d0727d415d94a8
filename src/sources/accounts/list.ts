import { promises as fs } from "node:fs";
import path from "node:path";
import { LifeboatError } from "../../core/errors.js";
import { isMysqlUrl, mysqlRecords } from "./mysql-list.js";
import { connect } from "./rows.js";

/**
 * Account sources: one definition that turns into many accounts, each with an id, an IANA
 * timezone and its own fields. Timezones and duplicate ids are checked by the fleet (one bad
 * account never stops the rest); a source that cannot be listed at all is one `LifeboatError`
 * naming the source and the fix.
 */
export interface ListedAccount {
  id: string;
  timezone: string | undefined;
  /** Fields the account's backup uses (`path`, `priority`, `updated_at`, ...), as text. */
  fields: Record<string, string>;
}

export type AccountList =
  /** A folder per account: the glob's `*` match is the id, the folder is the account's `path`. */
  | { kind: "glob"; glob: string; timezone?: string; timezones?: string }
  /** A file of accounts: JSON lines (`{"id":..,"timezone":..,...}`) or CSV with a header row. */
  | { kind: "file"; file: string }
  /** An SQL query against PostgreSQL or MariaDB/MySQL returning `id, timezone[, updated_at, ...]`. */
  | { kind: "sql"; url: string; query: string };

export function describeList(l: AccountList): string {
  switch (l.kind) {
    case "glob":
      return `account source glob ${l.glob}`;
    case "file":
      return `account source file ${l.file}`;
    case "sql":
      return `account source query on ${l.url.replace(/:[^:@/]*@/, ":***@")}`;
  }
}

export async function listAccounts(l: AccountList): Promise<ListedAccount[]> {
  switch (l.kind) {
    case "glob":
      return listGlob(l);
    case "file":
      return listFile(l.file);
    case "sql":
      return listSql(l);
  }
}

// --- glob --------------------------------------------------------------------------------------

const segmentRegex = (seg: string) =>
  new RegExp(
    `^${seg
      .split("")
      .map((ch) => (ch === "*" ? "[^/]*" : ch === "?" ? "[^/]" : ch.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
      .join("")}$`,
  );

/** Expands a glob with `*` and `?` in any path segment (no `**`): sorted absolute paths. */
export async function expandGlob(glob: string): Promise<string[]> {
  const abs = path.resolve(glob);
  const parts = abs.split("/").filter(Boolean);
  let found = ["/"];
  for (const part of parts) {
    const next: string[] = [];
    if (!/[*?]/.test(part)) {
      for (const dir of found) next.push(path.join(dir, part));
    } else {
      const re = segmentRegex(part);
      for (const dir of found) {
        let names: string[];
        try {
          names = await fs.readdir(dir);
        } catch {
          continue;
        }
        for (const n of names) if (re.test(n) && !n.startsWith(".")) next.push(path.join(dir, n));
      }
    }
    found = next;
  }
  const out: string[] = [];
  for (const p of found) {
    const st = await fs.stat(p).catch(() => undefined);
    if (st?.isDirectory()) out.push(p);
  }
  return out.sort();
}

async function listGlob(l: {
  glob: string;
  timezone?: string;
  timezones?: string;
}): Promise<ListedAccount[]> {
  const dirs = await expandGlob(l.glob);
  if (dirs.length === 0)
    throw new LifeboatError(
      "USAGE",
      `account source glob ${l.glob} matches no folder`,
      "check the glob (a * stands for the account id, e.g. /srv/mail/*) and that the folders exist",
    );
  const zones = l.timezones ? await zoneMap(l.timezones) : new Map<string, string>();
  const star = path
    .resolve(l.glob)
    .split("/")
    .findIndex((p) => /[*?]/.test(p));
  return dirs.map((d) => {
    const id = d.split("/")[star] ?? path.basename(d);
    return { id, timezone: zones.get(id) ?? l.timezone, fields: { path: d } };
  });
}

/** A timezone map file: JSON `{"id":"Europe/Berlin"}` or CSV/JSON lines with id and timezone. */
async function zoneMap(file: string): Promise<Map<string, string>> {
  const text = await readText(file, `timezone map ${file}`);
  if (text.trimStart().startsWith("{") && !text.trim().includes("\n")) {
    try {
      return new Map(Object.entries(JSON.parse(text) as Record<string, string>));
    } catch {}
  }
  const m = new Map<string, string>();
  for (const a of parseAccountsText(text, file)) if (a.timezone) m.set(a.id, a.timezone);
  return m;
}

// --- file --------------------------------------------------------------------------------------

async function readText(file: string, what: string): Promise<string> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (e) {
    throw new LifeboatError(
      "USAGE",
      `${what} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      "check the file name in the fleet's accounts setting",
    );
  }
}

async function listFile(file: string): Promise<ListedAccount[]> {
  return parseAccountsText(await readText(file, `account source file ${file}`), file);
}

/** JSON lines or CSV (first line: column names, one of them `id`). */
export function parseAccountsText(text: string, file: string): ListedAccount[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "" && !l.startsWith("#"));
  if (lines.length === 0) return [];
  const out: ListedAccount[] = [];
  if (lines[0]!.trimStart().startsWith("{")) {
    lines.forEach((l, i) => {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new LifeboatError(
          "USAGE",
          `account source file ${file}, line ${i + 1}: not valid JSON`,
          'write one account per line, e.g. {"id":"ann","timezone":"Europe/Berlin","path":"/srv/mail/ann"}',
        );
      }
      out.push(fromRecord(o, `${file}, line ${i + 1}`));
    });
    return out;
  }
  const header = splitCsv(lines[0]!);
  if (!header.includes("id"))
    throw new LifeboatError(
      "USAGE",
      `account source file ${file}: the CSV header has no id column`,
      "start the file with a header line such as id,timezone,path",
    );
  for (let i = 1; i < lines.length; i++) {
    const cells = splitCsv(lines[i]!);
    const o: Record<string, unknown> = {};
    header.forEach((h, j) => {
      if (cells[j] !== undefined && cells[j] !== "") o[h] = cells[j];
    });
    out.push(fromRecord(o, `${file}, line ${i + 1}`));
  }
  return out;
}

function splitCsv(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      out.push(cur.trim());
      cur = "";
    } else cur += ch;
  }
  out.push(cur.trim());
  return out;
}

function fromRecord(o: Record<string, unknown>, where: string): ListedAccount {
  const id = o.id;
  if ((typeof id !== "string" && typeof id !== "number") || String(id) === "")
    throw new LifeboatError(
      "USAGE",
      `account source ${where}: no id`,
      'give every account an "id" (the account\'s own name, e.g. its user id)',
    );
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === "id" || k === "timezone" || v === null || v === undefined) continue;
    fields[k] = v instanceof Date ? v.toISOString() : typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  return {
    id: String(id),
    timezone: typeof o.timezone === "string" && o.timezone !== "" ? o.timezone : undefined,
    fields,
  };
}

// --- sql ---------------------------------------------------------------------------------------

async function listSql(l: { url: string; query: string }): Promise<ListedAccount[]> {
  if (isMysqlUrl(l.url)) return listMysql(l);
  let c: Awaited<ReturnType<typeof connect>>;
  try {
    c = await connect(l.url);
  } catch (e) {
    throw new LifeboatError(
      (e as LifeboatError).code ?? "UNREACHABLE",
      `${describeList({ kind: "sql", ...l })}: ${(e as Error).message}`,
      "check that the database is up and the accounts URL is right (the fleet's other sources go on)",
    );
  }
  try {
    const r = await c.query(l.query);
    if (!r.fields.some((f) => f.name === "id"))
      throw new LifeboatError(
        "USAGE",
        `${describeList({ kind: "sql", ...l })}: the query returns no id column`,
        "return the account's id as `id` (and its timezone as `timezone`), e.g. SELECT user_id AS id, tz AS timezone FROM users",
      );
    return r.rows.map((row: Record<string, unknown>, i: number) => fromRecord(row, `query row ${i + 1}`));
  } catch (e) {
    if (e instanceof LifeboatError) throw e;
    throw new LifeboatError(
      "SOURCE_UNREADABLE",
      `${describeList({ kind: "sql", ...l })}: ${(e as Error).message}`,
      "fix the accounts query (it must return id, timezone[, updated_at, ...])",
    );
  } finally {
    await c.end().catch(() => {});
  }
}

/** The same against MariaDB/MySQL (through its client, see mysql-list.ts). */
async function listMysql(l: { url: string; query: string }): Promise<ListedAccount[]> {
  let rows: Record<string, string>[];
  try {
    rows = await mysqlRecords(l.url, l.query);
  } catch (e) {
    const code = (e as LifeboatError).code;
    if (/not installed/.test((e as Error).message)) throw e;
    const unreachable = code === "UNREACHABLE" || code === "AUTH_FAILED" || code === "NOT_FOUND";
    throw new LifeboatError(
      code ?? "SOURCE_UNREADABLE",
      `${describeList({ kind: "sql", ...l })}: ${(e as Error).message.split("\n")[0]}`,
      unreachable
        ? "check that the database is up and the accounts URL is right (the fleet's other sources go on)"
        : "fix the accounts query (it must return id, timezone[, updated_at, ...])",
    );
  }
  if (rows.length > 0 && !rows.some((r) => "id" in r))
    throw new LifeboatError(
      "USAGE",
      `${describeList({ kind: "sql", ...l })}: the query returns no id column`,
      "return the account's id as `id` (and its timezone as `timezone`), e.g. SELECT user_id AS id, tz AS timezone FROM users",
    );
  return rows.map((row, i) => fromRecord(row, `query row ${i + 1}`));
}
