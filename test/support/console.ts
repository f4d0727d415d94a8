/**
 * Starts the web console (`lifeboat --json ui --listen 127.0.0.1:0`) as a user would, and talks
 * to its API like the page does: a session cookie and the session's CSRF token.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { CLI } from "./cli.js";

export interface ConsoleServer {
  url: string;
  /** The admin token printed at first start. */
  token: string;
  child: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

export async function startConsole(env: Record<string, string>, args: string[] = []): Promise<ConsoleServer> {
  const child = spawn(process.execPath, [CLI, "--json", "ui", "--listen", "127.0.0.1:0", ...args], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const { url, token } = await new Promise<{ url: string; token: string }>((resolve, reject) => {
    let token = "";
    const timer = setTimeout(() => reject(new Error(`console did not start:\n${out}\n${err}`)), 30_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      for (const line of out.split("\n")) {
        if (!line.startsWith("{")) continue;
        const m = JSON.parse(line) as { message_type: string; url?: string; token?: string };
        if (m.message_type === "console_user" && m.token) token = m.token;
        if (m.message_type === "listening" && m.url) {
          clearTimeout(timer);
          resolve({ url: m.url.replace(/\/$/, ""), token });
        }
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`console exited with ${code}:\n${out}\n${err}`));
    });
  });
  return {
    url,
    token,
    child,
    stderr: () => err,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export interface Reply<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
  raw: Buffer;
}

/** A signed-in (or not) client of the console's API. */
export class ConsoleClient {
  cookie = "";
  csrf = "";

  constructor(readonly url: string) {}

  static async signIn(url: string, user: string, token: string): Promise<ConsoleClient> {
    const c = new ConsoleClient(url);
    const r = await c.login(user, token);
    if (r.status !== 200) throw new Error(`sign-in as ${user} failed: ${r.status} ${JSON.stringify(r.body)}`);
    return c;
  }

  async login(user: string, token: string): Promise<Reply<{ csrf: string; role: string }>> {
    const r = await this.request<{ csrf: string; role: string }>(
      "POST",
      "/api/login",
      { user, token },
      { csrf: false },
    );
    if (r.status === 200) {
      this.cookie = (r.headers.get("set-cookie") ?? "").split(";")[0]!;
      this.csrf = r.body.csrf;
    }
    return r;
  }

  get<T = unknown>(path: string): Promise<Reply<T>> {
    return this.request<T>("GET", path);
  }

  post<T = unknown>(
    path: string,
    body?: unknown,
    o: { csrf?: boolean; origin?: string } = {},
  ): Promise<Reply<T>> {
    return this.request<T>("POST", path, body, o);
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    o: { csrf?: boolean; origin?: string } = {},
  ): Promise<Reply<T>> {
    const headers: Record<string, string> = {};
    if (this.cookie) headers.cookie = this.cookie;
    if (body !== undefined) headers["content-type"] = "application/json";
    if (method !== "GET" && o.csrf !== false && this.csrf) headers["x-csrf-token"] = this.csrf;
    if (o.origin) headers.origin = o.origin;
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const raw = Buffer.from(await res.arrayBuffer());
    let parsed: unknown = raw;
    if ((res.headers.get("content-type") ?? "").includes("application/json"))
      parsed = JSON.parse(raw.toString("utf8"));
    return { status: res.status, body: parsed as T, headers: res.headers, raw };
  }

  /** Waits for a task to finish (polling its state) and returns it. */
  async waitTask<T = Record<string, unknown>>(
    id: string,
    timeoutMs = 120_000,
  ): Promise<T & { state: string }> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.get<T & { state: string }>(`/api/tasks/${id}`);
      if (r.status !== 200) throw new Error(`task ${id}: ${r.status} ${JSON.stringify(r.body)}`);
      if (["done", "failed", "cancelled"].includes(r.body.state)) return r.body;
      if (Date.now() > end) throw new Error(`task ${id} still ${r.body.state}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}
