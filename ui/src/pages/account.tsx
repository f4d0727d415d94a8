import { useState } from "preact/hooks";
import {
  type AccountDetail,
  type AccountHistory,
  api,
  type Me,
  type RestorePreview,
  type Task,
} from "../api";
import { ErrorBox, Loading, StateBadge, TaskProgress, usePoll } from "../components/common";
import { RestoreButtons } from "../components/restore-buttons";
import { ago, bytes, plural, time } from "../format";
import { href, type Route } from "../router";

/**
 * One account of a fleet: its snapshots (from the repository's per-account catalogue, never a
 * listing of every snapshot), its runs and drills, and a restore of it as it was at a time.
 */
export function AccountPage({ me, route }: { me: Me; route: Route }) {
  const fleet = route.parts[1] ?? "";
  const id = route.parts[2] ?? "";
  const base = `/api/fleets/${encodeURIComponent(fleet)}/accounts/${encodeURIComponent(id)}`;
  const detail = usePoll(() => api<AccountDetail>(base), [base], 10_000);
  const hist = usePoll(() => api<AccountHistory>(`${base}/history`), [base], 10_000);
  const a = detail.data;
  return (
    <div>
      <h1>
        <a href={href(["fleet", fleet])}>{fleet}</a> / <span data-testid="account-id">{id}</span>
      </h1>
      {detail.error ? <ErrorBox error={detail.error} /> : null}
      {a ? (
        <div class="card">
          <StateBadge state={a.state} /> {a.rpo}, {a.backlog} · {a.timezone} · newest good data{" "}
          {a.newestGood ? ago(a.newestGood) : "never"} · next run {a.nextDue ? ago(a.nextDue) : "–"} ·
          repository {a.repo}
          {a.lastError ? <div class="bad">last error: {a.lastError}</div> : null}
        </div>
      ) : detail.error ? null : (
        <Loading />
      )}
      <h2>Snapshots</h2>
      {hist.error ? <ErrorBox error={hist.error} /> : null}
      {hist.data ? (
        <>
          <table class="grid" data-testid="timeline">
            <thead>
              <tr>
                <th>Time</th>
                <th>Snapshot</th>
                <th>Files</th>
                <th>Size</th>
                <th>Change</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {hist.data.snapshots.map((s) => (
                <tr key={s.id} data-snapshot={s.id}>
                  <td>{time(s.time)}</td>
                  <td class="mono">{s.short_id}</td>
                  <td>{s.summary ? s.summary.files : "–"}</td>
                  <td>{bytes(s.summary?.bytes)}</td>
                  <td>
                    {s.deltaBytes === null || s.deltaBytes === undefined
                      ? "first"
                      : `${s.deltaBytes >= 0 ? "+" : ""}${bytes(s.deltaBytes)}`}
                    {s.summary ? (
                      <span class="muted small">
                        {" "}
                        ({s.summary.filesNew} new, {s.summary.filesChanged} changed)
                      </span>
                    ) : null}
                  </td>
                  <td class="row-actions">
                    <a class="btn" href={href(["browse", hist.data!.repo, s.id])}>
                      Browse
                    </a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {hist.data.snapshots.length === 0 ? <p class="muted">No snapshot yet.</p> : null}
          <h2>Runs</h2>
          <table class="grid">
            <tbody>
              {hist.data.runs.slice(0, 10).map((r) => (
                <tr key={`${r.at}-${r.window}`}>
                  <td>{time(r.at)}</td>
                  <td class="muted">{r.window}</td>
                  <td>{r.outcome}</td>
                  <td class="mono">{r.snapshot?.slice(0, 8) ?? ""}</td>
                  <td class="bad">{r.error ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Drills</h2>
          {hist.data.drills.length === 0 ? (
            <p class="muted">Not drilled yet (a sample of the fleet is drilled each night).</p>
          ) : (
            <ul>
              {hist.data.drills.slice(0, 10).map((d) => (
                <li key={d.at}>
                  {time(d.at)}: {d.ok ? "passed" : `FAILED ${d.error ?? ""}`}
                </li>
              ))}
            </ul>
          )}
          <RestoreAccount me={me} fleet={fleet} id={id} repo={hist.data.repo} />
        </>
      ) : hist.error ? null : (
        <Loading />
      )}
    </div>
  );
}

function RestoreAccount({ me, fleet, id, repo }: { me: Me; fleet: string; id: string; repo: string }) {
  const [at, setAt] = useState("");
  const [target, setTarget] = useState("");
  const [preview, setPreview] = useState<RestorePreview | null>(null);
  const [task, setTask] = useState<Task | null>(null);
  if (me.role === "viewer") return <p class="muted">Restoring needs the operator role.</p>;
  const body = () => ({
    repo,
    source: `account:${fleet}:${id}`,
    at: at ? new Date(at).toISOString() : new Date().toISOString(),
    target,
  });
  return (
    <div class="card form" data-testid="restore-account">
      <h2>Restore this account</h2>
      <label>
        Point in time (the newest snapshot at or before it; empty: the newest)
        <input
          name="at"
          type="datetime-local"
          step="1"
          value={at}
          onInput={(e) => setAt(e.currentTarget.value)}
        />
      </label>
      <label>
        Target folder on this host
        <input name="target" value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
      </label>
      <RestoreButtons
        restoreLabel="Restore"
        canPreview={target !== ""}
        canRestore={preview !== null}
        task={task}
        onTask={setTask}
        onPreview={async () => {
          setPreview(null);
          setPreview(await api<RestorePreview>("/api/restore/preview", { body: body() }));
        }}
        onRestore={() => api<Task>("/api/restore", { body: body() })}
      />
      {preview ? (
        <div data-testid="restore-preview">
          <strong>
            {plural(preview.files, "file")} in {plural(preview.dirs, "folder")}, {bytes(preview.bytes)}
          </strong>{" "}
          from the snapshot of {time(preview.snapshot.time)} ({preview.snapshot.id.slice(0, 8)})
          {preview.target ? (
            <div>
              into <span class="mono">{preview.target.path}</span>
              {preview.target.exists
                ? ` (exists, ${plural(preview.target.entries, "entry")})`
                : " (will be created)"}
            </div>
          ) : null}
        </div>
      ) : null}
      {task ? <TaskProgress task={task} /> : null}
      {task?.state === "done" ? (
        <div class="card ok" data-testid="restore-done">
          Restored {id} as of {preview ? time(preview.snapshot.time) : ""} to {target}
        </div>
      ) : null}
    </div>
  );
}
