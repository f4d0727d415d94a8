/** Talks to the console's JSON API (docs/api.md): the session cookie rides along, and every
 * request that changes something carries the session's CSRF token. */

import type { ApiErrorBody, SessionInfo, TaskView } from "../../src/app/console/api-types";

/** The API's shapes, one definition shared with the server (src/app/console/api-types.ts). */
export type * from "../../src/app/console/api-types";
/** The signed-in session. */
export type Me = SessionInfo;
export type Task = TaskView;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint: string | null,
  ) {
    super(message);
  }
}

let csrf = "";
let onSignedOut: () => void = () => {};

export function setSession(me: Me | null): void {
  csrf = me?.csrf ?? "";
}

export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const method = init.method ?? (init.body === undefined ? "GET" : "POST");
  const headers: Record<string, string> = {};
  if (init.body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  const data = (await res.json().catch(() => ({}))) as Partial<ApiErrorBody>;
  if (!res.ok) {
    if (res.status === 401 && path !== "/api/login") onSignedOut();
    const e = data.error ?? { code: String(res.status), message: res.statusText };
    throw new ApiError(res.status, e.code, e.message, e.hint ?? null);
  }
  return data as T;
}

export const q = (params: Record<string, string | number | undefined | null>) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
};

export const finished = (t: Task) => t.state === "done" || t.state === "failed" || t.state === "cancelled";

/** Follows a task's progress (server-sent events) until it finishes; returns a stop function. */
export function followTask(id: string, onTask: (t: Task) => void): () => void {
  const es = new EventSource(`/api/tasks/${encodeURIComponent(id)}/events`);
  es.addEventListener("task", (ev) => {
    const t = JSON.parse((ev as MessageEvent<string>).data) as Task;
    onTask(t);
    if (finished(t)) es.close();
  });
  es.onerror = () => {
    // The stream ends when the task does; a dropped one is picked up by reading the task once.
    es.close();
    void api<Task>(`/api/tasks/${encodeURIComponent(id)}`).then(onTask, () => {});
  };
  return () => es.close();
}
