import type { Hono, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { z } from "zod";
import type { ApiErrorBody, OkResult, SessionInfo, UserCreated, UserList } from "./api-types.js";
import { type ConsoleState, clientAddress, type Env, jsonBody, parse, requireRole } from "./context.js";
import { SESSION_COOKIE, sameSecret } from "./sessions.js";
import { ROLES } from "./users.js";

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * A request that changes something must come from the console's own page: its Origin (when the
 * browser sends one, as all current ones do for POST) names this host, and its body is JSON (a
 * cross-site form cannot send that without a CORS preflight, which is never granted).
 */
function sameOrigin(c: Parameters<MiddlewareHandler<Env>>[0]): boolean {
  const origin = c.req.header("origin");
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === c.req.header("host");
  } catch {
    return false;
  }
}

export function registerAuth(app: Hono<Env>, st: ConsoleState): void {
  const loginSchema = z
    .object({ user: z.string().min(1).max(64), token: z.string().min(1).max(256) })
    .strict();

  app.post("/api/login", async (c) => {
    if (!sameOrigin(c))
      return c.json(
        { error: { code: "CSRF", message: "cross-site sign-in refused" } } satisfies ApiErrorBody,
        403,
      );
    if (!(c.req.header("content-type") ?? "").startsWith("application/json"))
      return c.json(
        { error: { code: "USAGE", message: "send the sign-in as JSON" } } satisfies ApiErrorBody,
        415,
      );
    const addr = clientAddress(c);
    if (st.throttle.blocked(addr))
      return c.json(
        {
          error: { code: "THROTTLED", message: "too many failed sign-ins; wait a minute" },
        } satisfies ApiErrorBody,
        429,
      );
    const body = parse(loginSchema, await jsonBody(c));
    const user = await st.users.verify(body.user, body.token);
    if (!user) {
      st.throttle.fail(addr);
      await st.audit.write({
        user: body.user,
        role: "-",
        action: "sign-in",
        target: {},
        outcome: "refused",
        address: addr,
      });
      return c.json(
        { error: { code: "AUTH_FAILED", message: "wrong user name or token" } } satisfies ApiErrorBody,
        401,
      );
    }
    const s = st.sessions.create(user.name, user.role);
    setCookie(c, SESSION_COOKIE, s.id, {
      httpOnly: true,
      sameSite: "Strict",
      secure: st.secure,
      path: "/",
    });
    await st.audit.write({
      user: user.name,
      role: user.role,
      action: "sign-in",
      target: {},
      outcome: "ok",
      address: addr,
    });
    return c.json({ user: s.user, role: s.role, csrf: s.csrf } satisfies SessionInfo);
  });

  // Everything else under /api/ needs a session, and a CSRF token when it changes something.
  app.use("/api/*", async (c, next) => {
    const s = st.sessions.get(getCookie(c, SESSION_COOKIE));
    if (!s)
      return c.json(
        { error: { code: "UNAUTHENTICATED", message: "sign in first" } } satisfies ApiErrorBody,
        401,
      );
    if (!SAFE.has(c.req.method)) {
      if (!sameOrigin(c) || !sameSecret(c.req.header("x-csrf-token"), s.csrf))
        return c.json(
          {
            error: { code: "CSRF", message: "missing or wrong X-CSRF-Token", hint: "reload the page" },
          } satisfies ApiErrorBody,
          403,
        );
    }
    c.set("session", s);
    await next();
  });

  app.get("/api/session", (c) => {
    const s = c.get("session");
    return c.json({ user: s.user, role: s.role, csrf: s.csrf } satisfies SessionInfo);
  });

  app.post("/api/logout", (c) => {
    st.sessions.end(c.get("session").id);
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    return c.json({ ok: true } satisfies OkResult);
  });

  // Users (admin): make a user or a new token for one (shown once), remove one.
  const userSchema = z.object({ name: z.string().min(1).max(64), role: z.enum(ROLES) }).strict();
  app.get("/api/users", async (c) => {
    requireRole(c, "admin");
    return c.json({
      users: (await st.users.list()).map((u) => ({ name: u.name, role: u.role, created: u.created })),
    } satisfies UserList);
  });
  app.post("/api/users", async (c) => {
    const s = requireRole(c, "admin");
    const body = parse(userSchema, await jsonBody(c));
    const token = await st.users.set(body.name, body.role);
    st.sessions.endUser(body.name);
    await st.audit.write({
      user: s.user,
      role: s.role,
      action: "user-set",
      target: { name: body.name, role: body.role },
      outcome: "ok",
      address: clientAddress(c),
    });
    return c.json({ name: body.name, role: body.role, token } satisfies UserCreated);
  });
  app.delete("/api/users/:name", async (c) => {
    const s = requireRole(c, "admin");
    const name = c.req.param("name");
    if (name === s.user)
      return c.json(
        { error: { code: "USAGE", message: "you cannot remove yourself" } } satisfies ApiErrorBody,
        400,
      );
    if (!(await st.users.remove(name)))
      return c.json({ error: { code: "NOT_FOUND", message: `no user ${name}` } }, 404);
    st.sessions.endUser(name);
    await st.audit.write({
      user: s.user,
      role: s.role,
      action: "user-remove",
      target: { name },
      outcome: "ok",
      address: clientAddress(c),
    });
    return c.json({ ok: true } satisfies OkResult);
  });
}
