import { LifeboatError } from "../core/errors.js";

/** A database server URL taken apart: `scheme://USER[:PW]@HOST:PORT/DB?params`. */
export interface DbTarget {
  host: string | undefined;
  port: number | undefined;
  user: string | undefined;
  password: string | undefined;
  database: string | undefined;
  params: Record<string, string>;
  /** The URL without password: what snapshots are recorded under. */
  display: string;
}

/**
 * Parses a database URL whose scheme matches `schemes` (undefined for other arguments). The
 * display form keeps `displayScheme` (or the URL's own scheme) and drops the password.
 */
export function parseDbUrl(
  arg: string,
  schemes: RegExp,
  name: string,
  displayScheme?: string,
): DbTarget | undefined {
  if (!schemes.test(arg)) return undefined;
  let u: URL;
  try {
    u = new URL(arg);
  } catch {
    throw new LifeboatError(
      "USAGE",
      `not a valid ${name}:// URL`,
      `${name}://USER[:PASSWORD]@HOST:PORT/DATABASE`,
    );
  }
  const dec = (s: string) => (s === "" ? undefined : decodeURIComponent(s));
  const database = dec(u.pathname.replace(/^\//, ""));
  const params: Record<string, string> = {};
  for (const [k, v] of u.searchParams) params[k] = v;
  const user = dec(u.username);
  const host = dec(u.hostname.replace(/^\[|\]$/g, ""));
  const port = u.port ? Number(u.port) : undefined;
  const scheme = displayScheme ?? u.protocol.replace(/:$/, "").toLowerCase();
  const display = `${scheme}://${user ? `${encodeURIComponent(user)}@` : ""}${u.host}${database ? `/${encodeURIComponent(database)}` : ""}`;
  return { host, port, user, password: dec(u.password), database, params, display };
}
