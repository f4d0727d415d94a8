import { useEffect, useState } from "preact/hooks";
import {
  api,
  type Me,
  type RestoreFilesResult,
  type RestorePreview,
  type SnapshotJson,
  type SourceHistory,
  type Task,
} from "../api";
import { TaskProgress, usePoll } from "../components/common";
import { RestoreButtons } from "../components/restore-buttons";
import { bytes, plural, time } from "../format";
import type { Route } from "../router";
import { SourcePicker } from "./history";

/** datetime-local value (local time) ↔ ISO. */
const toLocalInput = (d: Date) => {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};

/** Restore a file, a folder, a snapshot or a database: pick, preview (dry run), restore, watch. */
export function RestorePage({ me, route }: { me: Me; route: Route }) {
  const p = route.params;
  const [source, setSource] = useState<string | undefined>(p.get("source") ?? undefined);
  const [repo, setRepo] = useState(p.get("repo") ?? "");
  const [mode, setMode] = useState<"snapshot" | "time">(p.get("at") ? "time" : "snapshot");
  const [snapshot, setSnapshot] = useState(p.get("snapshot") ?? "");
  const [at, setAt] = useState(p.get("at") ? toLocalInput(new Date(p.get("at")!)) : toLocalInput(new Date()));
  const [path, setPath] = useState(p.get("path") ?? "/");
  const [target, setTarget] = useState("");
  const [targetDb, setTargetDb] = useState("");
  const [preview, setPreview] = useState<RestorePreview | null>(null);
  const [task, setTask] = useState<Task | null>(null);
  const roots = usePoll(() => api<{ roots: string[] }>("/api/restore/roots"), [], 0);
  const snap = usePoll(
    () =>
      repo && snapshot
        ? api<SnapshotJson>(`/api/repos/${repo}/snapshots/${snapshot}`)
        : Promise.resolve(null),
    [repo, snapshot],
    0,
  );
  const hist = usePoll(
    () =>
      source
        ? api<SourceHistory>(`/api/sources/${encodeURIComponent(source)}/history`)
        : Promise.resolve(null),
    [source],
    0,
  );
  useEffect(() => {
    if (hist.data) setRepo(hist.data.source.repo);
  }, [hist.data]);
  useEffect(() => {
    if (!target && roots.data?.roots[0]) setTarget(`${roots.data.roots[0].replace(/\/$/, "")}/restored`);
  }, [roots.data]);
  const isDump =
    (preview?.snapshot.source ?? snap.data?.source) === "postgres" ||
    (preview?.snapshot.source ?? snap.data?.source) === "mysql";
  const body = () => ({
    repo,
    // The picked second is inclusive: "as it was at 10:15:07" takes a snapshot made during it.
    ...(mode === "snapshot"
      ? { snapshot }
      : { source, at: new Date(new Date(at).getTime() + 999).toISOString() }),
    path,
    ...(isDump ? { targetDb } : { target }),
  });
  const ready = repo && (mode === "snapshot" ? snapshot : source && at) && (isDump ? targetDb : target);
  if (me.role === "viewer")
    return (
      <div>
        <h1>Restore</h1>
        <div class="error" role="alert">
          Restoring needs the operator role; you are a viewer. You can still download files and folders from
          Browse.
        </div>
      </div>
    );
  return (
    <div>
      <h1>Restore</h1>
      <div class="form card">
        <div class="field">
          Source
          <SourcePicker
            value={source}
            onPick={(id) => {
              setSource(id || undefined);
              setPreview(null);
            }}
          />
        </div>
        <div class="radio">
          <label>
            <input
              type="radio"
              name="mode"
              checked={mode === "snapshot"}
              onChange={() => setMode("snapshot")}
            />{" "}
            a snapshot
          </label>
          <label>
            <input
              type="radio"
              name="mode"
              checked={mode === "time"}
              onChange={() => setMode("time")}
              disabled={!source}
            />{" "}
            as it was at a time
          </label>
        </div>
        {mode === "snapshot" ? (
          <label>
            Snapshot
            <select
              name="snapshot"
              value={snapshot}
              onChange={(e) => {
                setSnapshot(e.currentTarget.value);
                setPreview(null);
              }}
            >
              <option value="">Choose…</option>
              {snap.data && !hist.data?.snapshots.some((s) => s.id === snap.data!.id) ? (
                <option value={snap.data.id}>
                  {time(snap.data.time)} · {snap.data.short_id} · {snap.data.hostname}:
                  {snap.data.paths.join(" ")}
                </option>
              ) : null}
              {(hist.data?.snapshots ?? []).map((s) => (
                <option key={s.id} value={s.id}>
                  {time(s.time)} · {s.short_id}
                  {s.flagged ? " · flagged" : ""}
                </option>
              ))}
            </select>
          </label>
        ) : (
          <label>
            Point in time (the newest snapshot at or before it)
            <input
              name="at"
              type="datetime-local"
              step="1"
              value={at}
              onInput={(e) => setAt(e.currentTarget.value)}
            />
          </label>
        )}
        <label>
          Path inside the snapshot
          <input name="path" value={path} onInput={(e) => setPath(e.currentTarget.value)} />
        </label>
        {isDump ? (
          <label>
            New database to restore into (postgres://…/NEWDB or mysql://…/NEWDB)
            <input name="targetDb" value={targetDb} onInput={(e) => setTargetDb(e.currentTarget.value)} />
          </label>
        ) : (
          <label>
            Target folder on this host
            <input name="target" value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
            <span class="muted small">
              {roots.data
                ? roots.data.roots.length > 0
                  ? `allowed under: ${roots.data.roots.join(", ")}`
                  : "no restore roots are configured (console.restoreRoots): download from Browse instead"
                : ""}
            </span>
          </label>
        )}
        <RestoreButtons
          restoreLabel="Restore"
          canPreview={Boolean(ready)}
          canRestore={Boolean(ready) && preview !== null}
          task={task}
          onTask={setTask}
          onPreview={async () => {
            setPreview(null);
            setPreview(await api<RestorePreview>("/api/restore/preview", { body: body() }));
          }}
          onRestore={() => api<Task>("/api/restore", { body: body() })}
        />
      </div>
      {preview ? (
        <div class="card" data-testid="restore-preview">
          <strong>
            {preview.kind === "files"
              ? `${plural(preview.files, "file")} in ${plural(preview.dirs, "folder")}, ${bytes(preview.bytes)}`
              : preview.kind === "sqlite"
                ? `SQLite database file, ${bytes(preview.bytes)}`
                : `database dump, ${bytes(preview.bytes)}`}
          </strong>{" "}
          from {preview.snapshot.host}:{preview.path} of {time(preview.snapshot.time)} (
          {preview.snapshot.id.slice(0, 8)})
          {preview.target ? (
            <div>
              into <span class="mono">{preview.target.path}</span>:{" "}
              {preview.target.exists
                ? preview.target.entries > 0
                  ? `exists and holds ${plural(preview.target.entries, "entry")} (files already right are kept, others replaced)`
                  : "exists and is empty"
                : "will be created"}
            </div>
          ) : null}
          {preview.targetDb ? <div>into the new database {preview.targetDb}</div> : null}
        </div>
      ) : null}
      {task ? (
        <div data-testid="restore-task">
          <TaskProgress task={task} />
          {task.state === "done" && task.result ? (
            <div class="card ok" data-testid="restore-done">
              Restored {(() => {
                // A database or SQLite restore answers other fields (no `files`).
                const r = task.result as Partial<RestoreFilesResult>;
                return r.files !== undefined
                  ? `${plural(r.files, "file")} (${bytes(r.bytes ?? 0)}, ${r.filesSkipped ?? 0} already in place) to ${r.target ?? target}`
                  : "the database";
              })()}
            </div>
          ) : null}
        </div>
      ) : null}
    </div>
  );
}
