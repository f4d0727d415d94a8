import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Role } from "./users.js";

/**
 * Signed-in sessions, in memory (a restart signs everyone out). The cookie carries only a random
 * id; each session has its own CSRF token, which the page sends back in `X-CSRF-Token` on every
 * request that changes something.
 */
export interface Session {
  id: string;
  user: string;
  role: Role;
  csrf: string;
  created: number;
  seen: number;
}

/** Signed out after this long without a request, and after MAX_AGE whatever happens. */
const IDLE_MS = 2 * 3600_000;
const MAX_AGE_MS = 12 * 3600_000;

export const SESSION_COOKIE = "lifeboat_console";

export class Sessions {
  private readonly byId = new Map<string, Session>();

  create(user: string, role: Role): Session {
    this.sweep();
    const now = Date.now();
    const s: Session = {
      id: randomBytes(32).toString("base64url"),
      user,
      role,
      csrf: randomBytes(32).toString("base64url"),
      created: now,
      seen: now,
    };
    this.byId.set(s.id, s);
    return s;
  }

  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const s = this.byId.get(id);
    if (!s) return undefined;
    const now = Date.now();
    if (now - s.seen > IDLE_MS || now - s.created > MAX_AGE_MS) {
      this.byId.delete(id);
      return undefined;
    }
    s.seen = now;
    return s;
  }

  end(id: string): void {
    this.byId.delete(id);
  }

  /** Signs out every session of a user (their token was replaced or removed). */
  endUser(user: string): void {
    for (const [id, s] of this.byId) if (s.user === user) this.byId.delete(id);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, s] of this.byId)
      if (now - s.seen > IDLE_MS || now - s.created > MAX_AGE_MS) this.byId.delete(id);
  }
}

export function sameSecret(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Failed sign-ins per client address: after LIMIT in WINDOW the address waits (429). */
export class SignInThrottle {
  private readonly failures = new Map<string, number[]>();
  constructor(
    private readonly limit = 10,
    private readonly windowMs = 60_000,
  ) {}

  blocked(addr: string): boolean {
    const now = Date.now();
    const recent = (this.failures.get(addr) ?? []).filter((t) => now - t < this.windowMs);
    this.failures.set(addr, recent);
    return recent.length >= this.limit;
  }

  fail(addr: string): void {
    this.failures.set(addr, [...(this.failures.get(addr) ?? []), Date.now()]);
  }
}
