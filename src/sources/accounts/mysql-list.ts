import { LifeboatError } from "../../core/errors.js";
import { childrenOf, parseXml } from "../dav/xml.js";
import { type MysqlTarget, mysqlXmlQuery, parseMysqlUrl } from "../mysql.js";

/**
 * An account list from a query against MariaDB/MySQL, through the `mariadb` (or `mysql`)
 * client in XML mode: column names come with every value, and SQL NULL (`xsi:nil`) is told
 * apart from the text "NULL". The password travels in MYSQL_PWD, never on the command line.
 */
export function isMysqlUrl(url: string): boolean {
  return /^(mysql|mariadb):\/\//i.test(url);
}

export function mysqlTarget(url: string): MysqlTarget {
  const t = parseMysqlUrl(url);
  if (!t)
    throw new LifeboatError(
      "USAGE",
      `${JSON.stringify(url.replace(/:[^:@/]*@/, ":***@"))} is not a mysql:// URL`,
      "give the database as mysql://USER[:PASSWORD]@HOST:PORT/DATABASE",
    );
  return t;
}

/** The rows of a query as records (a NULL column is left out of its record). */
export async function mysqlRecords(url: string, query: string): Promise<Record<string, string>[]> {
  const xml = await mysqlXmlQuery(mysqlTarget(url), query);
  const root = parseXml(xml);
  const out: Record<string, string>[] = [];
  for (const row of childrenOf(root, "", "row")) {
    const rec: Record<string, string> = {};
    for (const f of childrenOf(row, "", "field")) {
      const name = f.attrs.name;
      if (name === undefined) continue;
      const nil = Object.entries(f.attrs).some(([k, v]) => /(^|})nil$/.test(k) && v === "true");
      if (!nil) rec[name] = f.text;
    }
    out.push(rec);
  }
  return out;
}
