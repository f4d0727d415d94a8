import { existsSync, promises as fs } from "node:fs";
import { createServer as createHttps } from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { type ServerType, serve } from "@hono/node-server";
import { serveStatic } from "@hono/node-server/serve-static";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { isLifeboatError, LifeboatError } from "../../core/errors.js";
import { packageRoot } from "../../fsio/package-root.js";
import type { Config } from "../config.js";
import { readState } from "../jobs.js";
import { registerActions } from "./api-actions.js";
import { registerAuth } from "./api-auth.js";
import { registerBrowse } from "./api-browse.js";
import { registerFleets } from "./api-fleets.js";
import { registerReads } from "./api-read.js";
import type { ApiErrorBody } from "./api-types.js";
import { AuditLog } from "./audit.js";
import type { CheckSummary, ConsoleState, Env } from "./context.js";
import { configFleets, type FleetEntry, fleetRepoSpecs, makeFleets } from "./fleets.js";
import { ConsoleRepo, type RepoOpener, repoSpecs } from "./repos.js";
import { normalizeRoots } from "./restore-roots.js";
import { Sessions, SignInThrottle } from "./sessions.js";
import { Tasks } from "./tasks.js";
import { consoleStateDir, UserStore } from "./users.js";

export interface ConsoleOptions {
  host: string;
  port: number;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Allow plain HTTP on an address that is not loopback (behind a TLS proxy on the same host). */
  allowInsecure?: boolean;
  /** The repository the console was started for, and how to open any repository. */
  repository: string;
  passwordFile?: string | undefined;
  open: RepoOpener;
  config: Config;
  /** Users, sessions' audit log and check results (default $XDG_STATE_HOME/lifeboat/console). */
  stateDir?: string;
  /** The built page (default dist/ui beside the compiled library). */
  uiDir?: string;
  /** A daemon in this process runs the jobs' schedules (`lifeboat daemon --ui`). */
  daemon?: boolean;
  /** Share the task list with the caller (the daemon adds its runs to it). */
  tasks?: Tasks;
  /** The fleets to show (default: the config file's), with their stores when already open. */
  fleets?: FleetEntry[];
}

export interface RunningConsole {
  url: string;
  port: number;
  /** The admin's sign-in token when the console made its first user now (print it once). */
  firstToken: string | undefined;
  usersFile: string;
  tasks: Tasks;
  close(): Promise<void>;
}

/** 127.0.0.0/8, ::1 and localhost: the only addresses served without TLS unless told otherwise. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Where `npm run build` puts the page: <package>/dist/ui. */
export function defaultUiDir(): string {
  return path.join(packageRoot(), "dist", "ui");
}

function statusOf(e: LifeboatError): 400 | 403 | 404 | 409 | 500 | 502 {
  switch (e.code) {
    case "USAGE":
      return 400;
    case "PERMISSION_DENIED":
      return 403;
    case "NOT_FOUND":
    case "SNAPSHOT_NOT_FOUND":
      return 404;
    case "SNAPSHOT_AMBIGUOUS":
    case "REPO_BUSY":
      return 409;
    case "UNREACHABLE":
    case "AUTH_FAILED":
    case "WRONG_PASSWORD":
    case "REPO_NOT_FOUND":
      return 502;
    default:
      return 500;
  }
}

/** The console as a Hono app (routes, security headers, errors as JSON, the page). */
export function consoleApp(st: ConsoleState, uiDir: string): Hono<Env> {
  const app = new Hono<Env>();
  app.use("*", async (c, next) => {
    await next();
    c.header("X-Content-Type-Options", "nosniff");
    c.header("X-Frame-Options", "DENY");
    c.header("Referrer-Policy", "no-referrer");
    c.header("Cross-Origin-Opener-Policy", "same-origin");
    if (!c.res.headers.has("Content-Security-Policy"))
      c.header(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
      );
    if (c.req.path.startsWith("/api/")) c.header("Cache-Control", "no-store");
  });
  app.onError((e, c) => {
    if (e instanceof HTTPException)
      return c.json(
        {
          error: { code: e.status === 403 ? "FORBIDDEN" : "HTTP", message: e.message },
        } satisfies ApiErrorBody,
        e.status,
      );
    if (isLifeboatError(e))
      return c.json(
        { error: { code: e.code, message: e.message, hint: e.hint ?? null } } satisfies ApiErrorBody,
        statusOf(e),
      );
    return c.json(
      {
        error: { code: "INTERNAL", message: e instanceof Error ? e.message : String(e) },
      } satisfies ApiErrorBody,
      500,
    );
  });
  registerAuth(app, st);
  registerReads(app, st);
  registerBrowse(app, st);
  registerActions(app, st);
  registerFleets(app, st);
  app.all("/api/*", (c) =>
    c.json(
      {
        error: { code: "NOT_FOUND", message: `no endpoint ${c.req.method} ${c.req.path}` },
      } satisfies ApiErrorBody,
      404,
    ),
  );
  app.use("/assets/*", serveStatic({ root: uiDir }));
  // Every other path is the page itself (it routes by the URL's #fragment).
  app.get("*", async (c) => {
    const index = path.join(uiDir, "index.html");
    if (!existsSync(index))
      return c.text("the console's page is not built: run `npm run build` in the lifeboat checkout", 500);
    return c.html(await fs.readFile(index, "utf8"));
  });
  return app;
}

/**
 * Starts the console: the page and its JSON API (docs/api.md). Listens on loopback unless TLS
 * is given or `allowInsecure`; makes the first user (`admin`, with a token returned once) when
 * there is none.
 */
export async function startConsole(o: ConsoleOptions): Promise<RunningConsole> {
  if (!isLoopback(o.host) && !o.tls && !o.allowInsecure)
    throw new LifeboatError(
      "USAGE",
      `the console would listen on ${o.host} without TLS`,
      "give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --insecure-listen behind a TLS proxy",
    );
  const stateDir = o.stateDir ?? consoleStateDir();
  const users = new UserStore(path.join(stateDir, "users.json"));
  const firstToken = await users.ensureFirstUser();
  const checksFile = path.join(stateDir, "checks.json");
  const lastChecks = new Map<string, CheckSummary>(
    Object.entries(
      await fs.readFile(checksFile, "utf8").then(
        (t) => JSON.parse(t) as Record<string, CheckSummary>,
        () => ({}),
      ),
    ),
  );
  const fleetEntries = o.fleets ?? configFleets(o.config.fleets);
  const repos = fleetRepoSpecs(
    repoSpecs(o.repository, o.passwordFile, o.config.jobs),
    fleetEntries,
    o.passwordFile,
  ).map((s) => new ConsoleRepo(s, o.open));
  const fleets = makeFleets(fleetEntries, repos);
  const tasks = o.tasks ?? new Tasks();
  const st: ConsoleState = {
    repos,
    fleets,
    config: o.config,
    jobState: () => readState(),
    users,
    sessions: new Sessions(),
    throttle: new SignInThrottle(),
    audit: new AuditLog(path.join(stateDir, "audit.log")),
    tasks,
    restoreRoots: normalizeRoots(o.config.console?.restoreRoots ?? []),
    secure: o.tls !== undefined,
    daemon: o.daemon ?? false,
    lastChecks,
    saveChecks: async () => {
      await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
      const tmp = `${checksFile}.tmp-${process.pid}`;
      await fs.writeFile(tmp, JSON.stringify(Object.fromEntries(lastChecks), null, 2), { mode: 0o600 });
      await fs.rename(tmp, checksFile);
    },
  };
  const app = consoleApp(st, o.uiDir ?? defaultUiDir());
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve(
      {
        fetch: app.fetch,
        hostname: o.host.replace(/^\[|\]$/g, ""),
        port: o.port,
        ...(o.tls ? { createServer: createHttps, serverOptions: { cert: o.tls.cert, key: o.tls.key } } : {}),
      },
      () => resolve(s),
    );
    s.once("error", reject);
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = o.host.includes(":") && !o.host.startsWith("[") ? `[${o.host}]` : o.host;
  return {
    url: `${o.tls ? "https" : "http"}://${hostPart}:${port}/`,
    port,
    firstToken,
    usersFile: users.file,
    tasks,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await Promise.all(repos.map((r) => r.close()));
      await Promise.all(fleets.map((f) => f.close()));
    },
  };
}
