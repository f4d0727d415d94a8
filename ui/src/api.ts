/** Talks to the console's JSON API (docs/api.md): the session cookie rides along, and every
 * request that changes something carries the session's CSRF token. */

export interface Me {
  user: string;
  role: "viewer" | "operator" | "admin";
  csrf: string;
}

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
  const data = (await res.json().catch(() => ({}))) as {
    error?: { code: string; message: string; hint?: string };
  };
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

export interface Task {
  id: string;
  kind: string;
  title: string;
  user: string;
  repo: string | null;
  state: "queued" | "running" | "done" | "failed" | "cancelled";
  phase: string;
  waiting: string | null;
  created: string;
  started: string | null;
  finished: string | null;
  progress: {
    filesDone: number;
    bytesDone: number;
    totalFiles: number | null;
    totalBytes: number | null;
    bytesPerSecond: number;
    etaSeconds: number | null;
  } | null;
  accounts: { done: number; total: number | null; failed: number } | null;
  cancellable: boolean;
  result: unknown;
  error: { code: string; message: string; hint: string | null } | null;
}

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

export interface DrillSummary {
  id: string;
  time: string;
  ageSeconds: number;
  snapshot: string;
  ok: boolean;
  mode: "full" | "sample";
  files: number;
  bytes: number;
  seconds: number;
  mbPerSecond: number | null;
  failed: number;
  firstFailure?: { path: string; reason: string };
  engineCheck?: string;
}

export type SourceState = "protected" | "late" | "failing" | "never";

export interface SourceRow {
  id: string;
  kind: "job" | "series";
  name: string;
  job: string | null;
  repo: string;
  location: string;
  host: string | null;
  paths: string[];
  source: string;
  state: SourceState;
  reason: string;
  snapshots: number;
  newest: { id: string; time: string; ageSeconds: number; incomplete: boolean } | null;
  rpoSeconds: number;
  every: string | null;
  nextRun: string | null;
  lastRun: string | null;
  lastExitCode: number | null;
  lastDrill: DrillSummary | null;
  lastOkDrill: DrillSummary | null;
  flagged: number;
  copies: { repo: string; location: string; newestTime: string; inSync: boolean }[];
  logicalBytes: number;
  storedBytes: number;
}

export interface SnapshotItem {
  id: string;
  short_id: string;
  time: string;
  hostname: string;
  paths: string[];
  tags: string[];
  source?: string;
  incomplete: boolean;
  errors: string[];
  flagged: boolean;
  anomalies: string[];
  acknowledged: boolean;
  pinned: boolean;
  deltaBytes?: number | null;
  summary?: {
    files: number;
    dirs: number;
    bytes: number;
    filesNew: number;
    filesChanged: number;
    filesUnchanged: number;
    bytesAdded: number;
    bytesStored: number;
    durationMs: number;
  };
}

export interface FleetSummary {
  name: string;
  kind: "folder" | "rows";
  repo: string;
  window: string;
  rpoSeconds: number;
  queue: boolean;
  accounts: number;
  states: Record<SourceState, number>;
  backlog: Record<"running" | "failed" | "due" | "done" | "missed" | "new", number>;
  proven30Days: number;
  proven30DaysFraction: number;
  error: string | null;
}

export interface AccountRow {
  id: string;
  timezone: string;
  state: SourceState;
  rpo: string;
  backlog: string;
  newestGood: string | null;
  ageSeconds: number | null;
  nextDue: string | null;
  window: string;
  lastSnapshot: string | null;
  lastError: string | null;
}
