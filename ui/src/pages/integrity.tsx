import { useState } from "preact/hooks";
import { api, followTask, type IntegrityData, type Me, type Task } from "../api";
import { ActionButton, ErrorBox, Loading, StateBadge, TaskProgress, usePoll } from "../components/common";
import { ago, bytes, time } from "../format";
import { href } from "../router";

/** Drills and checks: when each source was last proven restorable; run a drill or a check now. */
export function Integrity({ me }: { me: Me }) {
  const d = usePoll(() => api<IntegrityData>("/api/integrity"), [], 5000);
  const [tasks, setTasks] = useState<Record<string, Task>>({});
  const start = async (key: string, path: string, body: unknown) => {
    const t = await api<Task>(path, { body });
    setTasks((m) => ({ ...m, [key]: t }));
    followTask(t.id, (x) => {
      setTasks((m) => ({ ...m, [key]: x }));
      if (x.state === "done" || x.state === "failed") d.reload();
    });
  };
  if (d.error && !d.data) return <ErrorBox error={d.error} />;
  if (!d.data) return <Loading />;
  const { proven, of } = d.data.proven30Days;
  const operator = me.role !== "viewer";
  return (
    <div>
      <h1>Integrity</h1>
      <div class="tiles">
        <div class={`tile ${proven === of ? "tile-protected" : "tile-late"}`}>
          <div class="tile-n" data-testid="proven">
            {of === 0 ? "–" : `${Math.round((100 * proven) / of)}%`}
          </div>
          <div class="tile-label">
            proven restorable in the last 30 days ({proven} of {of} sources)
          </div>
        </div>
      </div>
      {d.data.fleets.length > 0 ? (
        <>
          <h2>Fleets</h2>
          <p class="muted">
            Each night a sample of every fleet's accounts is restored into a scratch folder and verified; an
            account drilled with success in the last 30 days counts as proven.
          </p>
          <table class="grid" data-testid="fleet-integrity">
            <thead>
              <tr>
                <th>Fleet</th>
                <th>Proven restorable in the last 30 days</th>
              </tr>
            </thead>
            <tbody>
              {d.data.fleets.map((f) => (
                <tr key={f.fleet} data-fleet={f.fleet}>
                  <td>
                    <a href={href(["fleet", f.fleet])}>{f.fleet}</a>
                  </td>
                  <td data-testid="fleet-proven">
                    {f.error ? (
                      <span class="bad">{f.error}</span>
                    ) : (
                      `${(f.fraction * 100).toFixed(1)}% (${f.proven} of ${f.accounts} accounts)`
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
      <h2>Restore drills</h2>
      <table class="grid">
        <thead>
          <tr>
            <th>Source</th>
            <th>Last proven restorable</th>
            <th>Last drill</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {d.data.sources.map((s) => (
            <tr key={s.id} data-source={s.name}>
              <td>
                <StateBadge state={s.state} /> <a href={href(["history", s.id])}>{s.name}</a>
              </td>
              <td>
                {s.lastProvenRestorable ? (
                  <>
                    {ago(s.lastProvenRestorable.time)}{" "}
                    <span class="muted small">
                      ({s.lastProvenRestorable.mode}, {bytes(s.lastProvenRestorable.bytes)} in{" "}
                      {s.lastProvenRestorable.seconds.toFixed(2)}s)
                    </span>
                  </>
                ) : (
                  <span class="muted">never</span>
                )}
              </td>
              <td>
                {s.lastDrill ? (
                  <>
                    <span class={`badge ${s.lastDrill.ok ? "badge-protected" : "badge-failing"}`}>
                      {s.lastDrill.ok ? "passed" : "failed"}
                    </span>{" "}
                    {time(s.lastDrill.time)}
                    {s.lastDrill.firstFailure ? (
                      <div class="bad small">
                        {s.lastDrill.firstFailure.path}: {s.lastDrill.firstFailure.reason}
                      </div>
                    ) : null}
                  </>
                ) : (
                  <span class="muted">none</span>
                )}
              </td>
              <td>
                {operator && s.newest ? (
                  <>
                    <ActionButton
                      name="drill"
                      onClick={() => start(`drill:${s.id}`, "/api/drills", { repo: s.repo, source: s.id })}
                    >
                      Drill now
                    </ActionButton>
                    <ActionButton
                      onClick={() =>
                        start(`drill:${s.id}`, "/api/drills", { repo: s.repo, source: s.id, sample: 50 })
                      }
                    >
                      Sample 50 files
                    </ActionButton>
                  </>
                ) : null}
                {tasks[`drill:${s.id}`] ? <TaskProgress task={tasks[`drill:${s.id}`]!} /> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Repository checks</h2>
      <table class="grid">
        <thead>
          <tr>
            <th>Repository</th>
            <th>Last check from the console</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {d.data.checks.map((c) => (
            <tr key={c.repo}>
              <td>
                {c.location} <span class="muted">{c.repo}</span>
              </td>
              <td>
                {c.last ? (
                  <>
                    <span class={`badge ${c.last.ok ? "badge-protected" : "badge-failing"}`}>
                      {c.last.ok ? "ok" : "problems"}
                    </span>{" "}
                    {time(c.last.time)} by {c.last.user}
                    {c.last.readData
                      ? ` · read ${c.last.packsRead} of ${c.last.packs} packs (${bytes(c.last.bytesRead)})`
                      : " · structure only"}
                    {c.last.problems.map((p) => (
                      <div class="bad small" key={p.object}>
                        {p.kind} {p.object}: {p.message} ({p.affected} snapshots affected)
                      </div>
                    ))}
                  </>
                ) : (
                  <span class="muted">
                    never run here (lifeboat check runs are not recorded in the repository)
                  </span>
                )}
              </td>
              <td>
                {operator ? (
                  <>
                    <ActionButton onClick={() => start(`check:${c.repo}`, "/api/checks", { repo: c.repo })}>
                      Check structure
                    </ActionButton>
                    <ActionButton
                      onClick={() =>
                        start(`check:${c.repo}`, "/api/checks", { repo: c.repo, readData: "10%" })
                      }
                    >
                      Check and read 10% of the data
                    </ActionButton>
                  </>
                ) : null}
                {tasks[`check:${c.repo}`] ? <TaskProgress task={tasks[`check:${c.repo}`]!} /> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
