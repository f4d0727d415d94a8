import { randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { LifeboatError } from "../../core/errors.js";
import type { Role } from "./api-types.js";

/**
 * Who may sign in to the console: `$XDG_STATE_HOME/lifeboat/console/users.json` (mode 0600),
 * each user with a role and an scrypt hash of their sign-in token. Tokens are made here, shown
 * once, and never stored in the clear.
 */
export const ROLES = ["viewer", "operator", "admin"] as const satisfies readonly Role[];
export type { Role } from "./api-types.js";

/** viewer: reads and downloads; operator: also restore, run now, drills, ack; admin: also retention. */
export function roleAtLeast(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

const userSchema = z.object({
  name: z.string(),
  role: z.enum(ROLES),
  hash: z.string(),
  created: z.string(),
});
const fileSchema = z.object({ version: z.literal(1), users: z.array(userSchema) });
export type ConsoleUser = z.infer<typeof userSchema>;

export function consoleStateDir(): string {
  const state = process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(state, "lifeboat", "console");
}

const N = 1 << 15;
/** scrypt parameters: small enough for a sign-in, large enough to make a stolen file costly. */
function hashToken(token: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(token, salt, 32, { N, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${N}$8$1$${salt.toString("base64")}$${hash.toString("base64")}`;
}

function verifyToken(stored: string, token: string): boolean {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([^$]+)\$([^$]+)$/.exec(stored);
  if (!m) return false;
  const want = Buffer.from(m[5]!, "base64");
  const got = scryptSync(token, Buffer.from(m[4]!, "base64"), want.length, {
    N: Number(m[1]),
    r: Number(m[2]),
    p: Number(m[3]),
    maxmem: 256 * 1024 * 1024,
  });
  return want.length === got.length && timingSafeEqual(want, got);
}

/** A verification that costs the same when the user does not exist (no user enumeration by
 * timing). Made on first use, not when the module loads: every CLI command imports this file,
 * and the scrypt cost 140 ms of CPU and 32 MiB of peak memory in each. */
let dummy: string | undefined;
function dummyHash(): string {
  dummy ??= hashToken(randomBytes(16).toString("hex"));
  return dummy;
}

const NAME = /^[A-Za-z0-9._@-]{1,64}$/;

export class UserStore {
  constructor(readonly file: string = path.join(consoleStateDir(), "users.json")) {
    // Made now, so the first sign-in costs no more than the others.
    dummyHash();
  }

  async list(): Promise<ConsoleUser[]> {
    let raw: string;
    try {
      raw = await fs.readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
    const parsed = fileSchema.safeParse(JSON.parse(raw));
    if (!parsed.success)
      throw new LifeboatError(
        "USAGE",
        `the console's user file ${this.file} is malformed`,
        "fix it, or move it away to start over (a new admin token is then printed)",
      );
    return parsed.data.users;
  }

  private async save(users: ConsoleUser[]): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp-${randomBytes(4).toString("hex")}`;
    await fs.writeFile(tmp, `${JSON.stringify({ version: 1, users }, null, 2)}\n`, { mode: 0o600 });
    await fs.rename(tmp, this.file);
  }

  /** Adds a user (or gives an existing one a new token and role); returns the token, shown once. */
  async set(name: string, role: Role): Promise<string> {
    if (!NAME.test(name))
      throw new LifeboatError(
        "USAGE",
        `${JSON.stringify(name)} is not a user name`,
        "use letters, digits, . _ @ -",
      );
    const token = randomBytes(24).toString("base64url");
    const users = (await this.list()).filter((u) => u.name !== name);
    users.push({ name, role, hash: hashToken(token), created: new Date().toISOString() });
    await this.save(users);
    return token;
  }

  async remove(name: string): Promise<boolean> {
    const users = await this.list();
    const rest = users.filter((u) => u.name !== name);
    if (rest.length === users.length) return false;
    await this.save(rest);
    return true;
  }

  /** On first start (no user file): an `admin` user with a new token, returned to be printed once. */
  async ensureFirstUser(): Promise<string | undefined> {
    if ((await this.list()).length > 0) return undefined;
    return this.set("admin", "admin");
  }

  /** The user a name and token prove, or undefined (in about the same time either way). */
  async verify(name: string, token: string): Promise<ConsoleUser | undefined> {
    const user = (await this.list()).find((u) => u.name === name);
    const ok = verifyToken(user?.hash ?? dummyHash(), token);
    return user && ok ? user : undefined;
  }
}
