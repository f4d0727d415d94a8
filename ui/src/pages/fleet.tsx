import { useState } from "preact/hooks";
import {
  type AccountPage,
  api,
  type FleetSummary,
  type Me,
  q,
  type RestoreAllPreview,
  type RestoreAllResult,
  type SourceState,
  type Task,
} from "../api";
import {
  ErrorBox,
  Loading,
  Pager,
  type SortOrder,
  SortTh,
  StateBadge,
  TaskProgress,
  usePoll,
} from "../components/common";
import { RestoreButtons } from "../components/restore-buttons";
import { age, ago, plural, time } from "../format";
import { href, type Route } from "../router";

const LIMIT = 50;

/**
 * One fleet: its figures, its accounts paged, searched and sorted by the fleet's state store (a
 * million accounts never reach the page), and the whole-service restore.
 */
export function FleetPage({ me, route }: { me: Me; route: Route }) {
  const name = route.parts[1] ?? "";
  const [filter, setFilter] = useState<SourceState | "">((route.params.get("state") as SourceState) ?? "");
  const [search, setSearch] = useState("");
  const [sort, setSort] = useState<SortOrder>({ by: "state", order: "asc" });
  const [offset, setOffset] = useState(0);
  const base = `/api/fleets/${encodeURIComponent(name)}`;
  const sum = usePoll(() => api<FleetSummary>(base), [name], 5000);
  const list = usePoll(
    () =>
      api<AccountPage>(
        `${base}/accounts${q({ offset, limit: LIMIT, q: search, state: filter, sort: sort.by, order: sort.order })}`,
      ),
    [name, offset, search, filter, sort.by, sort.order],
    5000,
  );
  const head = (by: string, label: string) => <SortTh by={by} label={label} sort={sort} onSort={setSort} />;
  const f = sum.data;
  return (
    <div>
      <h1>
        Fleet <span data-testid="fleet-name">{name}</span>
      </h1>
      {sum.error ? <ErrorBox error={sum.error} /> : null}
      {f ? (
        <>
          <div class="muted">
            {plural(f.accounts, "account")} · {f.kind} · RPO {age(f.rpoSeconds)} · window {f.window} (each
            account's own time) · repository {f.repo} · backlog: {f.backlog.due} due, {f.backlog.running}{" "}
            running, {f.backlog.failed} failed, {f.backlog.missed} missed, {f.backlog.new} new
          </div>
          <div class="tiles">
            {(["failing", "late", "never", "protected"] as SourceState[]).map((s) => (
              <button
                type="button"
                key={s}
                class={`tile tile-${s} ${filter === s ? "selected" : ""}`}
                onClick={() => {
                  setOffset(0);
                  setFilter(filter === s ? "" : s);
                }}
              >
                <div class="tile-n" data-testid={`fleet-count-${s}`}>
                  {f.states[s].toLocaleString("en-US")}
                </div>
                <div class="tile-label">{s[0]!.toUpperCase() + s.slice(1)}</div>
              </button>
            ))}
            <a class="tile" href={href(["integrity"])}>
              <div class="tile-n">
                {f.accounts === 0 ? "–" : `${(f.proven30DaysFraction * 100).toFixed(1)}%`}
              </div>
              <div class="tile-label">proven restorable in 30 days</div>
            </a>
          </div>
        </>
      ) : (
        <Loading />
      )}
      <h2>Accounts</h2>
      <div class="toolbar">
        <input
          type="search"
          name="account-search"
          placeholder="Search account id"
          value={search}
          onInput={(e) => {
            setOffset(0);
            setSearch(e.currentTarget.value);
          }}
        />
        {filter ? (
          <button type="button" class="btn" onClick={() => setFilter("")}>
            showing {filter} only ✕
          </button>
        ) : null}
      </div>
      {list.error ? <ErrorBox error={list.error} /> : null}
      {list.data ? (
        <>
          <table class="grid" data-testid="accounts" data-total={list.data.total}>
            <thead>
              <tr>
                {head("state", "State")}
                {head("id", "Account")}
                <th>Timezone</th>
                {head("age", "Newest good data")}
                {head("next", "Next run")}
                <th>This window</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((a) => (
                <tr key={a.id} data-account={a.id}>
                  <td>
                    <StateBadge state={a.state} />
                  </td>
                  <td>
                    <a href={href(["account", name, a.id])}>{a.id}</a>
                    {a.lastError ? <div class="bad small">{a.lastError}</div> : null}
                  </td>
                  <td class="muted">{a.timezone}</td>
                  <td>{a.ageSeconds === null ? "never" : `${age(a.ageSeconds)} old`}</td>
                  <td>{a.nextDue ? ago(a.nextDue) : <span class="muted">–</span>}</td>
                  <td class="small">
                    {a.backlog} <span class="muted">({a.rpo})</span>
                  </td>
                  <td class="row-actions">
                    <a class="btn" href={href(["account", name, a.id])}>
                      History
                    </a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager offset={offset} limit={LIMIT} total={list.data.total} onChange={setOffset} />
        </>
      ) : (
        <Loading />
      )}
      <RestoreAll me={me} fleet={name} kind={f?.kind ?? "folder"} />
    </div>
  );
}

/** Where a whole-service restore puts each kind of account without a target (fleet restore --all). */
const IN_PLACE: Record<string, string> = {
  folder: "folder accounts back into their own folders (which must lie under the restore roots)",
  rows: "rows back into the fleet's shared tables, for each account alone",
  imap: "mail back into each account on the fleet's mail server (its folders and messages; nothing is written on this host)",
  dav: "address books and calendars back into each account on the fleet's DAV server (nothing is written on this host)",
};

/** The day everything is lost: every account back, with a dry run first and progress after. */
function RestoreAll({ me, fleet, kind }: { me: Me; fleet: string; kind: string }) {
  const [target, setTarget] = useState("");
  const [at, setAt] = useState("");
  const [parallel, setParallel] = useState("8");
  const [preview, setPreview] = useState<RestoreAllPreview | null>(null);
  const [task, setTask] = useState<Task | null>(null);
  if (me.role === "viewer") return <p class="muted">The whole-service restore needs the operator role.</p>;
  const body = () => ({
    ...(target ? { target } : {}),
    ...(at ? { at: new Date(at).toISOString() } : {}),
    parallel: Number(parallel),
  });
  const base = `/api/fleets/${encodeURIComponent(fleet)}/restore`;
  return (
    <div class="card form" data-testid="restore-all">
      <h2>Whole-service restore</h2>
      <p class="muted">
        Every account from its newest snapshot (or the newest at a time), in priority order, several at once:{" "}
        {IN_PLACE[kind] ?? IN_PLACE.folder}; or, given a target folder, under it{" "}
        {kind === "folder"
          ? "(each account in its own subfolder)"
          : "as files (each account in its own subfolder)"}
        . A run that stops resumes where it stopped.
      </p>
      <label>
        Target folder (empty: {kind === "imap" || kind === "dav" ? "back onto the server" : "in place"})
        <input name="all-target" value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
      </label>
      <label>
        Point in time (empty: newest)
        <input
          name="all-at"
          type="datetime-local"
          step="1"
          value={at}
          onInput={(e) => setAt(e.currentTarget.value)}
        />
      </label>
      <label>
        Accounts at once
        <input
          name="all-parallel"
          type="number"
          min="1"
          max="64"
          value={parallel}
          onInput={(e) => setParallel(e.currentTarget.value)}
        />
      </label>
      <RestoreButtons
        names={["all-preview", "all-restore"]}
        restoreLabel="Restore every account"
        restoreKind="danger"
        canRestore={preview !== null}
        task={task}
        onTask={setTask}
        onPreview={async () => {
          setPreview(null);
          setPreview(await api<RestoreAllPreview>(`${base}/preview`, { body: body() }));
        }}
        onRestore={() => api<Task>(base, { body: body() })}
      />
      {preview ? (
        <div data-testid="restore-all-preview">
          <strong>
            {plural(preview.accounts, "account")}
            {preview.alreadyRestored > 0
              ? ` (${preview.alreadyRestored} already restored in run ${preview.run})`
              : ""}
          </strong>{" "}
          {preview.into === "target"
            ? `under ${preview.target?.path}${kind === "folder" ? "" : ", as files"}`
            : preview.into === "shared-tables"
              ? `into the shared tables of ${preview.sharedDb}`
              : preview.into === "servers"
                ? `back into each account on ${preview.server ?? "its server"} (nothing is written on this host)`
                : "into their own folders"}
          , {preview.parallel} at once{preview.at ? `, as at ${time(preview.at)}` : ""}. First in order:
          <table class="grid">
            <tbody>
              {preview.first.map((a) => (
                <tr key={a.account}>
                  <td>{a.account}</td>
                  <td>{a.time ? time(a.time) : <span class="bad">{a.error}</span>}</td>
                  <td class="mono small">{a.where}</td>
                  <td>{a.allowed ? "" : <span class="bad">refused: outside the restore roots</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <div class="muted small mono">{preview.command}</div>
        </div>
      ) : null}
      {task ? <TaskProgress task={task} /> : null}
      {task?.state === "done" && task.result ? (
        <div class="card ok" data-testid="restore-all-done">
          {(() => {
            const r = task.result as RestoreAllResult;
            return `${r.restored} restored, ${r.skipped} already restored, ${r.failed} failed, in ${r.seconds.toFixed(1)} s`;
          })()}
        </div>
      ) : null}
    </div>
  );
}
