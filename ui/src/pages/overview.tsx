import { useState } from "preact/hooks";
import {
  api,
  type FleetSummary,
  type Me,
  type OverviewData,
  q,
  type SourcePage,
  type SourceState,
  type Task,
} from "../api";
import {
  ActionButton,
  ErrorBox,
  Loading,
  Pager,
  SizeChart,
  type SortOrder,
  SortTh,
  StateBadge,
  usePoll,
} from "../components/common";
import { age, ago, bytes, plural } from "../format";
import { go, href } from "../router";

const LIMIT = 25;

/**
 * Is everyone protected? The state of every repository and source, worst first, refreshed every
 * few seconds. Sources are paged, sorted and searched by the server; each fleet of accounts is
 * one row here, its accounts on its own page (fleet.tsx).
 */
export function Overview({ me }: { me: Me }) {
  const [filter, setFilter] = useState<SourceState | "">("");
  const [search, setSearch] = useState("");
  const [sort, setSort] = useState<SortOrder>({ by: "state", order: "asc" });
  const [offset, setOffset] = useState(0);
  const ov = usePoll(() => api<OverviewData>("/api/overview"), [], 4000);
  const src = usePoll(
    () =>
      api<SourcePage>(
        `/api/sources${q({ offset, limit: LIMIT, q: search, state: filter, sort: sort.by, order: sort.order })}`,
      ),
    [offset, search, filter, sort.by, sort.order],
    4000,
  );
  const head = (by: string, label: string) => <SortTh by={by} label={label} sort={sort} onSort={setSort} />;
  return (
    <div>
      <h1>Overview</h1>
      {ov.error ? <ErrorBox error={ov.error} /> : null}
      {ov.data ? (
        <>
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
                <div class="tile-n" data-testid={`count-${s}`}>
                  {ov.data!.states[s]}
                </div>
                <div class="tile-label">{s[0]!.toUpperCase() + s.slice(1)}</div>
              </button>
            ))}
            <a
              class={`tile ${ov.data.flagged > 0 ? "tile-failing" : "tile-protected"}`}
              href={href(["history"])}
            >
              <div class="tile-n">{ov.data.flagged}</div>
              <div class="tile-label">Flagged snapshots</div>
            </a>
          </div>
          <h2>Repositories</h2>
          <div class="cards">
            {ov.data.repositories.map((r) => (
              <div class="card repo" key={r.id}>
                <div class="card-title">
                  <strong>{r.location}</strong> <span class="muted">{r.id}</span>
                </div>
                {r.error ? (
                  <div class="error">{r.error}</div>
                ) : (
                  <>
                    <div class="figures">
                      <span>
                        {plural(r.snapshots ?? 0, "snapshot")}
                        {r.accountSnapshots ? ` (${r.accountSnapshots} of fleet accounts)` : ""}
                      </span>
                      <span>{plural(r.sources ?? 0, "source")}</span>
                      <span>
                        {bytes(r.logicalBytes)} logical · {bytes(r.packBytes)} stored in{" "}
                        {plural(r.packs ?? 0, "pack")}
                      </span>
                    </div>
                    <SizeChart points={r.sizeHistory ?? []} />
                  </>
                )}
              </div>
            ))}
          </div>
          {ov.data.fleets.length > 0 ? <FleetTable fleets={ov.data.fleets} /> : null}
        </>
      ) : (
        <Loading />
      )}
      <h2>Sources</h2>
      <div class="toolbar">
        <input
          type="search"
          placeholder="Search name, host or path"
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
      {src.error ? <ErrorBox error={src.error} /> : null}
      {src.data ? (
        <>
          <table class="grid" data-testid="sources">
            <thead>
              <tr>
                {head("state", "State")}
                {head("name", "Source")}
                {head("repo", "Repository")}
                {head("age", "Newest snapshot")}
                <th>Last proven restorable</th>
                <th>Next run</th>
                <th>Copies</th>
                {head("size", "Size")}
                <th />
              </tr>
            </thead>
            <tbody>
              {src.data.items.map((s) => (
                <tr key={s.id} data-source={s.name}>
                  <td>
                    <StateBadge state={s.state} />
                  </td>
                  <td>
                    <a href={href(["history", s.id])}>{s.name}</a>
                    <div class="muted small">{s.reason}</div>
                  </td>
                  <td class="muted">{s.repo}</td>
                  <td>
                    {s.newest ? (
                      <>
                        {age(s.newest.ageSeconds)} old <span class="muted">/ RPO {age(s.rpoSeconds)}</span>
                      </>
                    ) : (
                      "never"
                    )}
                  </td>
                  <td>
                    {s.lastOkDrill ? (
                      `${ago(s.lastOkDrill.time)} (${s.lastOkDrill.mode})`
                    ) : (
                      <span class="muted">never</span>
                    )}
                    {s.lastDrill && !s.lastDrill.ok ? <div class="bad small">last drill failed</div> : null}
                  </td>
                  <td>{s.nextRun ? ago(s.nextRun) : <span class="muted">no schedule</span>}</td>
                  <td>
                    {s.copies.length === 0 ? (
                      <span class="muted">none</span>
                    ) : (
                      `${s.copies.filter((c) => c.inSync).length} of ${s.copies.length} in sync`
                    )}
                  </td>
                  <td>{bytes(s.logicalBytes)}</td>
                  <td class="row-actions">
                    {s.newest ? (
                      <a class="btn" href={href(["browse", s.repo, s.newest.id])}>
                        Browse
                      </a>
                    ) : null}
                    {s.job && me.role !== "viewer" ? (
                      <ActionButton
                        name={`run-${s.job}`}
                        onClick={async () => {
                          const t = await api<Task>(`/api/jobs/${encodeURIComponent(s.job!)}/run`, {
                            method: "POST",
                          });
                          go(["activity"], { task: t.id });
                        }}
                      >
                        Run now
                      </ActionButton>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager offset={offset} limit={LIMIT} total={src.data.total} onChange={setOffset} />
        </>
      ) : (
        <Loading />
      )}
    </div>
  );
}

/** Every fleet with its accounts by state, RPO and backlog; a fleet's name opens its accounts. */
export function FleetTable({ fleets }: { fleets: FleetSummary[] }) {
  return (
    <>
      <h2>Fleets</h2>
      <table class="grid" data-testid="fleets">
        <thead>
          <tr>
            <th>Fleet</th>
            <th>Accounts</th>
            <th>Failing</th>
            <th>Late</th>
            <th>Never</th>
            <th>Protected</th>
            <th>RPO · window</th>
            <th>Backlog</th>
            <th>Proven (30 days)</th>
          </tr>
        </thead>
        <tbody>
          {fleets.map((f) => (
            <tr key={f.name} data-fleet={f.name}>
              <td>
                <a href={href(["fleet", f.name])}>{f.name}</a>{" "}
                <span class="muted small">
                  {f.kind}
                  {f.queue ? ", queue" : ""} · {f.repo}
                </span>
                {f.error ? <div class="error small">{f.error}</div> : null}
              </td>
              <td data-testid="fleet-accounts">{f.accounts.toLocaleString("en-US")}</td>
              {(["failing", "late", "never", "protected"] as const).map((st) => (
                <td key={st}>
                  {f.states[st] > 0 ? (
                    <a href={href(["fleet", f.name], { state: st })}>
                      <span class={`badge badge-${st}`} data-count={st}>
                        {f.states[st].toLocaleString("en-US")}
                      </span>
                    </a>
                  ) : (
                    <span class="muted">0</span>
                  )}
                </td>
              ))}
              <td>
                {age(f.rpoSeconds)} · {f.window}
              </td>
              <td class="small">
                {f.backlog.due} due, {f.backlog.running} running, {f.backlog.failed} failed,{" "}
                {f.backlog.missed} missed
              </td>
              <td>
                {f.accounts === 0 ? "–" : `${(f.proven30DaysFraction * 100).toFixed(1)}%`}{" "}
                <span class="muted small">({f.proven30Days})</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
