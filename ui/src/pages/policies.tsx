import { useState } from "preact/hooks";
import {
  api,
  type Me,
  type PoliciesData,
  type PolicyApplied,
  type PolicySimulation,
  type RepositoryList,
} from "../api";
import { ActionButton, ErrorBox, Loading, usePoll } from "../components/common";
import { ago, time } from "../format";

const FIELDS = ["last", "hourly", "daily", "weekly", "monthly", "yearly"] as const;

/** Schedules and retention: what each job keeps, a simulator, and the CLI command for each change. */
export function Policies({ me }: { me: Me }) {
  const p = usePoll(() => api<PoliciesData>("/api/policies"), [], 10000);
  const repos = usePoll(() => api<RepositoryList>("/api/repositories"), [], 0);
  const [repo, setRepo] = useState("main");
  const [job, setJob] = useState("");
  const [nums, setNums] = useState<Record<string, string>>({ daily: "7" });
  const [within, setWithin] = useState("");
  const [sim, setSim] = useState<PolicySimulation | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [applied, setApplied] = useState<string | null>(null);
  const body = () => {
    const policy: Record<string, unknown> = {};
    for (const f of FIELDS) if (nums[f]) policy[f] = Number(nums[f]);
    if (within) policy.within = within;
    return { repo, ...(job ? { job } : {}), policy };
  };
  if (p.error && !p.data) return <ErrorBox error={p.error} />;
  if (!p.data) return <Loading />;
  return (
    <div>
      <h1>Policies</h1>
      <div class="card">
        <strong>Object Lock retention</strong>:{" "}
        {p.data.objectLock?.days
          ? `every object is locked for ${p.data.objectLock.days} days (${p.data.objectLock.mode ?? "governance"} mode). Shown here, changed in the config file.`
          : "none configured (retention.days in the config file)"}
      </div>
      <h2>Schedules and retention per job</h2>
      <table class="grid">
        <thead>
          <tr>
            <th>Job</th>
            <th>Every</th>
            <th>Last run</th>
            <th>Next run</th>
            <th>Keeps</th>
            <th>Equivalent command</th>
          </tr>
        </thead>
        <tbody>
          {p.data.jobs.map((j) => (
            <tr key={j.name}>
              <td>{j.name}</td>
              <td>{j.every}</td>
              <td>{j.lastRun ? time(j.lastRun) : "never"}</td>
              <td>{ago(j.nextRun)}</td>
              <td>
                {j.keep ? (
                  Object.entries(j.keep)
                    .map(([k, v]) => `${k} ${v}`)
                    .join(", ")
                ) : (
                  <span class="muted">everything</span>
                )}
              </td>
              <td class="mono small">{j.forgetCommand ?? "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Retention simulator</h2>
      <div class="form card">
        <div class="row">
          <label>
            Repository
            <select name="repo" value={repo} onChange={(e) => setRepo(e.currentTarget.value)}>
              {(repos.data?.repositories ?? []).map((r) => (
                <option key={r.id} value={r.id}>
                  {r.location}
                </option>
              ))}
            </select>
          </label>
          <label>
            Snapshots of
            <select name="job" value={job} onChange={(e) => setJob(e.currentTarget.value)}>
              <option value="">every series</option>
              {p.data.jobs.map((j) => (
                <option key={j.name} value={j.name}>
                  job {j.name}
                </option>
              ))}
            </select>
          </label>
        </div>
        <div class="row">
          {FIELDS.map((f) => (
            <label key={f} class="narrow">
              keep {f}
              <input
                name={f}
                type="number"
                min="1"
                value={nums[f] ?? ""}
                onInput={(e) => setNums((n) => ({ ...n, [f]: e.currentTarget.value }))}
              />
            </label>
          ))}
          <label class="narrow">
            keep within
            <input
              name="within"
              placeholder="30d"
              value={within}
              onInput={(e) => setWithin(e.currentTarget.value)}
            />
          </label>
        </div>
        <div class="toolbar">
          <ActionButton
            name="simulate"
            kind="primary"
            onClick={async () => {
              setErr(null);
              setApplied(null);
              try {
                setSim(await api<PolicySimulation>("/api/policies/simulate", { body: body() }));
              } catch (e) {
                setErr(e);
              }
            }}
          >
            Simulate
          </ActionButton>
          {me.role === "admin" && sim ? (
            <ActionButton
              kind="danger"
              onClick={async () => {
                if (!confirm(`Forget ${sim.removed} snapshots now? (prune frees their data later)`)) return;
                const r = await api<PolicyApplied>("/api/policies/apply", { body: body() });
                setApplied(`${r.removed.length} snapshots forgotten`);
                setSim(null);
              }}
            >
              Apply (forget)
            </ActionButton>
          ) : null}
        </div>
        <ErrorBox error={err} />
        {applied ? <div class="card ok">{applied}</div> : null}
      </div>
      {sim ? (
        <div data-testid="simulation">
          <p>
            <strong>
              {sim.kept} kept, {sim.removed} removed.
            </strong>{" "}
            Same as <code class="mono">{sim.command}</code>
          </p>
          {sim.groups.map((g) => (
            <div class="card" key={JSON.stringify(g.key)}>
              <div class="muted small">{JSON.stringify(g.key)}</div>
              <table class="grid">
                <tbody>
                  {g.decisions.map((d) => (
                    <tr key={d.id} class={d.keep ? "" : "row-removed"}>
                      <td>{time(d.time)}</td>
                      <td class="mono">{d.id.slice(0, 8)}</td>
                      <td>
                        <span class={`badge ${d.keep ? "badge-protected" : "badge-never"}`}>
                          {d.keep ? "keep" : "remove"}
                        </span>
                      </td>
                      <td class="small">{d.reasons.join(", ")}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ))}
        </div>
      ) : null}
    </div>
  );
}
