import { createHash, randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import { promises as fs } from "node:fs";
import { LifeboatError } from "../../core/errors.js";

/**
 * Who may use a `lifeboat serve`: an htpasswd-style file (`user:hash` lines; hashes made by
 * `lifeboat serve --hash-password` with scrypt, or Apache's `{SHA}` form) and bearer tokens
 * (`token [user]` lines). Secrets are compared in constant time.
 */
export interface Users {
  /** The user a Basic or Bearer Authorization header proves, or undefined. */
  check(authorization: string | undefined): string | undefined;
}

const N = 1 << 15;

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, { N, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${N}$8$1$${salt.toString("base64")}$${hash.toString("base64")}`;
}

function verify(stored: string, password: string): boolean {
  if (stored.startsWith("{SHA}")) {
    const want = Buffer.from(stored.slice(5), "base64");
    const got = createHash("sha1").update(password).digest();
    return want.length === got.length && timingSafeEqual(want, got);
  }
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([^$]+)\$([^$]+)$/.exec(stored);
  if (!m) return false;
  const want = Buffer.from(m[5]!, "base64");
  const got = scryptSync(password, Buffer.from(m[4]!, "base64"), want.length, {
    N: Number(m[1]),
    r: Number(m[2]),
    p: Number(m[3]),
    maxmem: 256 * 1024 * 1024,
  });
  return timingSafeEqual(want, got);
}

const sha256 = (s: string) => createHash("sha256").update(s).digest();

export async function loadUsers(htpasswd: string | undefined, tokenFile: string | undefined): Promise<Users> {
  const passwords = new Map<string, string>();
  const tokens: { hash: Buffer; user: string }[] = [];
  const read = async (file: string, what: string) => {
    try {
      return await fs.readFile(file, "utf8");
    } catch (e) {
      throw new LifeboatError(
        "USAGE",
        `cannot read the ${what} ${file}: ${(e as Error).message}`,
        "check the path",
      );
    }
  };
  if (htpasswd) {
    for (const line of (await read(htpasswd, "password file")).split("\n")) {
      const t = line.trim();
      if (!t || t.startsWith("#")) continue;
      const i = t.indexOf(":");
      if (i <= 0)
        throw new LifeboatError(
          "USAGE",
          `malformed line in ${htpasswd}: expected user:hash`,
          "make lines with `lifeboat serve --hash-password`",
        );
      const hash = t.slice(i + 1);
      if (!hash.startsWith("scrypt$") && !hash.startsWith("{SHA}"))
        throw new LifeboatError(
          "USAGE",
          `${htpasswd}: the hash of user ${t.slice(0, i)} is in a form lifeboat does not read`,
          "use `lifeboat serve --hash-password` (scrypt) or `htpasswd -s` ({SHA})",
        );
      passwords.set(t.slice(0, i), hash);
    }
  }
  if (tokenFile) {
    for (const line of (await read(tokenFile, "token file")).split("\n")) {
      const [token, user] = line.trim().split(/\s+/);
      if (!token || token.startsWith("#")) continue;
      tokens.push({ hash: sha256(token), user: user ?? "token" });
    }
  }
  // Remember verified Basic credentials briefly: scrypt per request would cap throughput.
  const verified = new Map<string, { user: string; until: number }>();
  return {
    check(authorization) {
      if (!authorization) return undefined;
      const [scheme, value] = authorization.split(" ", 2);
      if (!value) return undefined;
      if (scheme?.toLowerCase() === "bearer") {
        const h = sha256(value);
        return tokens.find((t) => timingSafeEqual(t.hash, h))?.user;
      }
      if (scheme?.toLowerCase() !== "basic") return undefined;
      const key = sha256(value).toString("hex");
      const hit = verified.get(key);
      if (hit && hit.until > Date.now()) return hit.user;
      const decoded = Buffer.from(value, "base64").toString("utf8");
      const i = decoded.indexOf(":");
      if (i < 0) return undefined;
      const user = decoded.slice(0, i);
      const stored = passwords.get(user);
      if (!stored || !verify(stored, decoded.slice(i + 1))) return undefined;
      if (verified.size > 1000) verified.clear();
      verified.set(key, { user, until: Date.now() + 5 * 60_000 });
      return user;
    },
  };
}
