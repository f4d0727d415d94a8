import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, type SourceState, type Task } from "../api";
import { age, bytes } from "../format";

export function StateBadge({ state }: { state: SourceState | string }) {
  return (
    <span class={`badge badge-${state}`} data-state={state}>
      {state}
    </span>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as ApiError;
  return (
    <div class="error" role="alert">
      <strong>{e.message ?? String(error)}</strong>
      {e instanceof ApiError && e.hint ? <div class="hint">{e.hint}</div> : null}
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <div class="loading" aria-busy="true">
      <span class="spinner" /> {what}…
    </div>
  );
}

/** A button that shows it is working while its action runs, and any error beside it. */
export function ActionButton(props: {
  onClick: () => Promise<unknown>;
  children: ComponentChildren;
  kind?: "primary" | "danger" | "plain";
  disabled?: boolean;
  title?: string;
  name?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  return (
    <span class="action">
      <button
        type="button"
        name={props.name}
        class={`btn btn-${props.kind ?? "plain"}`}
        disabled={busy || props.disabled}
        title={props.title}
        onClick={async () => {
          setBusy(true);
          setErr(null);
          try {
            await props.onClick();
          } catch (e) {
            setErr(e);
          } finally {
            setBusy(false);
          }
        }}
      >
        {busy ? <span class="spinner small" /> : null}
        {props.children}
      </button>
      {err ? (
        <span class="inline-error" role="alert">
          {(err as Error).message}
        </span>
      ) : null}
    </span>
  );
}

export function TaskProgress({ task }: { task: Task }) {
  const p = task.progress;
  const pct = p?.totalBytes ? Math.min(100, (100 * p.bytesDone) / p.totalBytes) : null;
  return (
    <div class={`task task-${task.state}`} data-task-state={task.state}>
      <div class="task-head">
        <strong>{task.title}</strong>
        <span class={`badge badge-task-${task.state}`}>{task.state}</span>
      </div>
      <div class="task-phase">
        {task.state === "queued" ? (task.waiting ?? "queued") : task.phase}
        {task.state === "running" ? <span class="spinner small" /> : null}
      </div>
      {p ? (
        <>
          <div class="bar">
            <div class="bar-fill" style={{ width: `${pct ?? (task.state === "done" ? 100 : 5)}%` }} />
          </div>
          <div class="task-figures">
            {p.filesDone}
            {p.totalFiles !== null ? ` / ${p.totalFiles}` : ""} files · {bytes(p.bytesDone)}
            {p.totalBytes !== null ? ` / ${bytes(p.totalBytes)}` : ""} · {bytes(p.bytesPerSecond)}/s
            {p.etaSeconds !== null && task.state === "running" ? ` · ETA ${age(p.etaSeconds)}` : ""}
          </div>
        </>
      ) : null}
      {task.accounts ? (
        <>
          <div class="bar">
            <div
              class="bar-fill"
              style={{
                width: `${task.accounts.total ? Math.min(100, (100 * task.accounts.done) / task.accounts.total) : task.state === "done" ? 100 : 5}%`,
              }}
            />
          </div>
          <div class="task-figures" data-testid="task-accounts">
            {task.accounts.done}
            {task.accounts.total !== null ? ` / ${task.accounts.total}` : ""} accounts
            {task.accounts.failed > 0 ? `, ${task.accounts.failed} failed` : ""}
          </div>
        </>
      ) : null}
      {task.error ? (
        <div class="error">
          {task.error.message}
          {task.error.hint ? <div class="hint">{task.error.hint}</div> : null}
        </div>
      ) : null}
    </div>
  );
}

/** Reloads `load` now and every `ms` while the page is shown. */
export function usePoll<T>(load: () => Promise<T>, deps: unknown[], ms = 5000) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () =>
      load().then(
        (d) => {
          if (live) {
            setData(d);
            setError(null);
          }
        },
        (e) => {
          if (live) setError(e);
        },
      );
    void run();
    const t = ms > 0 ? setInterval(run, ms) : undefined;
    return () => {
      live = false;
      if (t) clearInterval(t);
    };
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((x) => x + 1) };
}

/** Stored vs logical bytes over time, as two lines (an SVG drawn here: no chart library). */
export function SizeChart({ points }: { points: { time: string; logical: number; stored: number }[] }) {
  if (points.length === 0) return <div class="muted">no snapshots yet</div>;
  const w = 360;
  const h = 110;
  const t0 = Date.parse(points[0]!.time);
  const t1 = Math.max(t0 + 1, Date.parse(points.at(-1)!.time));
  const max = Math.max(1, ...points.map((p) => Math.max(p.logical, p.stored)));
  const x = (t: string) => 30 + ((Date.parse(t) - t0) / (t1 - t0)) * (w - 40);
  const y = (v: number) => h - 18 - (v / max) * (h - 30);
  const line = (k: "logical" | "stored") =>
    points.map((p, i) => `${i === 0 ? "M" : "L"}${x(p.time).toFixed(1)},${y(p[k]).toFixed(1)}`).join(" ");
  return (
    <svg class="chart" viewBox={`0 0 ${w} ${h}`} role="img" aria-label="stored and logical size over time">
      <line x1="30" y1={h - 18} x2={w - 10} y2={h - 18} class="axis" />
      <text x="2" y="12" class="tick">
        {bytes(max)}
      </text>
      <text x="30" y={h - 4} class="tick">
        {points[0]!.time.slice(0, 10)}
      </text>
      <text x={w - 80} y={h - 4} class="tick">
        {points.at(-1)!.time.slice(0, 10)}
      </text>
      <path d={line("logical")} class="line-logical" />
      <path d={line("stored")} class="line-stored" />
      <text x={w - 150} y="12" class="legend-logical">
        logical
      </text>
      <text x={w - 90} y="12" class="legend-stored">
        stored
      </text>
    </svg>
  );
}

export function Pager(props: {
  offset: number;
  limit: number;
  total: number;
  onChange: (offset: number) => void;
}) {
  const { offset, limit, total } = props;
  return (
    <div class="pager">
      <button
        type="button"
        class="btn"
        disabled={offset === 0}
        onClick={() => props.onChange(Math.max(0, offset - limit))}
      >
        ‹ Previous
      </button>
      <span>
        {total === 0 ? 0 : offset + 1}–{Math.min(total, offset + limit)} of {total}
      </span>
      <button
        type="button"
        class="btn"
        disabled={offset + limit >= total}
        onClick={() => props.onChange(offset + limit)}
      >
        Next ›
      </button>
    </div>
  );
}

export interface SortOrder {
  by: string;
  order: "asc" | "desc";
}

/** A column head sorting a server-paged table: a click sorts by it, a second click reverses. */
export function SortTh(props: {
  by: string;
  label: string;
  sort: SortOrder;
  onSort: (s: SortOrder) => void;
}) {
  const { by, sort } = props;
  return (
    <th
      class="sortable"
      onClick={() => props.onSort({ by, order: sort.by === by && sort.order === "asc" ? "desc" : "asc" })}
    >
      {props.label}
      {sort.by === by ? (sort.order === "asc" ? " ▲" : " ▼") : ""}
    </th>
  );
}
