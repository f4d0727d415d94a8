import { useState } from "preact/hooks";
import { api, type DiffResult, type FlagList, type Me, type SourceHistory, type SourcePage } from "../api";
import { ActionButton, ErrorBox, Loading, StateBadge, usePoll } from "../components/common";
import { bytes, plural, time } from "../format";
import { go, href, type Route } from "../router";

export function SourcePicker({ value, onPick }: { value: string | undefined; onPick: (id: string) => void }) {
  const list = usePoll(() => api<SourcePage>("/api/sources?limit=1000&sort=name"), [], 0);
  return (
    <select
      name="source"
      value={value ?? ""}
      onChange={(e) => onPick(e.currentTarget.value)}
      disabled={!list.data}
    >
      <option value="">{list.data ? "Choose a source…" : "Loading sources…"}</option>
      {(list.data?.items ?? []).map((s) => (
        <option key={s.id} value={s.id}>
          {s.name} ({s.repo})
        </option>
      ))}
    </select>
  );
}

/** A source's snapshots over time: sizes and changes, guard flags (and ack), drills, diffs. */
export function History({ me, route }: { me: Me; route: Route }) {
  const id = route.parts[1];
  const [pick, setPick] = useState<string[]>([]);
  const [diff, setDiff] = useState<DiffResult | null>(null);
  const h = usePoll(
    () => (id ? api<SourceHistory>(`/api/sources/${encodeURIComponent(id)}/history`) : Promise.resolve(null)),
    [id],
    5000,
  );
  const flags = usePoll(() => api<FlagList>("/api/flags"), [], 5000);
  const toggle = (sid: string) => {
    setDiff(null);
    setPick((p) => (p.includes(sid) ? p.filter((x) => x !== sid) : [...p.slice(-1), sid]));
  };
  const unacked = (flags.data?.flagged ?? []).filter((f) => f.flagged && !f.acknowledged);
  const max = Math.max(1, ...(h.data?.snapshots ?? []).map((s) => s.summary?.bytes ?? 0));
  return (
    <div>
      <h1>History</h1>
      {unacked.length > 0 ? (
        <div class="card warn">
          <strong>{plural(unacked.length, "snapshot")} flagged as a possible wipe, not acknowledged</strong>
          <ul>
            {unacked.map((f) => (
              <li key={f.id}>
                {f.short_id} of {f.hostname}:{f.paths.join(" ")} at {time(f.time)}: {f.anomalies.join("; ")}
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      <div class="toolbar">
        <SourcePicker value={id} onPick={(s) => go(["history", s])} />
      </div>
      {!id ? <p class="muted">Choose a source to see its snapshots, flags and drills.</p> : null}
      {h.error ? <ErrorBox error={h.error} /> : null}
      {id && !h.data && !h.error ? <Loading /> : null}
      {h.data ? (
        <>
          <div class="card">
            <StateBadge state={h.data.source.state} /> <strong>{h.data.source.name}</strong>{" "}
            <span class="muted">{h.data.source.reason}</span>
            <div class="muted small">
              {h.data.source.location} · {plural(h.data.source.snapshots, "snapshot")}
            </div>
          </div>
          <div class="toolbar">
            <ActionButton
              disabled={pick.length !== 2}
              title="tick two snapshots"
              onClick={async () => {
                const [a, b] = pick
                  .map((p) => h.data!.snapshots.find((s) => s.id === p)!)
                  .sort((x, y) => (x.time < y.time ? -1 : 1));
                setDiff(
                  await api<DiffResult>(
                    `/api/repos/${h.data!.source.repo}/diff?a=${a!.id}&b=${b!.id}&limit=500`,
                  ),
                );
              }}
            >
              Compare the two ticked snapshots
            </ActionButton>
          </div>
          {diff ? (
            <div class="card" data-testid="diff">
              <strong>
                +{diff.summary.added} −{diff.summary.removed} ~{diff.summary.modified} (metadata{" "}
                {diff.summary.metadata}), {bytes(diff.summary.bytesAdded)} added,{" "}
                {bytes(diff.summary.bytesRemoved)} removed
              </strong>
              <ul class="mono small diff">
                {diff.changes.map((c) => (
                  <li
                    key={c.path}
                    class={`diff-${c.modifier === "+" ? "add" : c.modifier === "-" ? "del" : "mod"}`}
                  >
                    {c.modifier} {c.path}
                  </li>
                ))}
              </ul>
              {diff.truncated ? <div class="muted">first {diff.changes.length} changes shown</div> : null}
            </div>
          ) : null}
          <h2>Snapshots</h2>
          <table class="grid timeline" data-testid="timeline">
            <thead>
              <tr>
                <th />
                <th>Time</th>
                <th>Size</th>
                <th>Change</th>
                <th>Files</th>
                <th>Guard</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {h.data.snapshots.map((s) => (
                <tr key={s.id} data-snapshot={s.id} class={s.flagged && !s.acknowledged ? "row-flagged" : ""}>
                  <td>
                    <input
                      type="checkbox"
                      checked={pick.includes(s.id)}
                      onChange={() => toggle(s.id)}
                      aria-label={`select ${s.short_id}`}
                    />
                  </td>
                  <td>
                    {time(s.time)} <span class="muted mono">{s.short_id}</span>
                    {s.incomplete ? <span class="badge badge-late">incomplete</span> : null}
                  </td>
                  <td>
                    <div class="sizebar">
                      <div style={{ width: `${(100 * (s.summary?.bytes ?? 0)) / max}%` }} />
                    </div>
                    {bytes(s.summary?.bytes)}
                  </td>
                  <td>
                    {s.deltaBytes === null || s.deltaBytes === undefined
                      ? "first"
                      : `${s.deltaBytes >= 0 ? "+" : ""}${bytes(s.deltaBytes)}`}
                    <div class="muted small">{bytes(s.summary?.bytesAdded)} new data</div>
                  </td>
                  <td class="small">
                    {s.summary
                      ? `${s.summary.filesNew} new, ${s.summary.filesChanged} changed, ${s.summary.files} in all`
                      : "–"}
                  </td>
                  <td>
                    {s.flagged ? (
                      <div class="flag" data-testid="flag">
                        <span class={`badge ${s.acknowledged ? "badge-protected" : "badge-failing"}`}>
                          {s.acknowledged ? "flagged, acknowledged" : "FLAGGED"}
                        </span>
                        <div class="small">{s.anomalies.join("; ")}</div>
                        {!s.acknowledged && me.role !== "viewer" ? (
                          <ActionButton
                            kind="primary"
                            name="ack"
                            onClick={async () => {
                              await api(`/api/repos/${h.data!.source.repo}/snapshots/${s.id}/ack`, {
                                body: { note: "checked in the console" },
                              });
                              h.reload();
                              flags.reload();
                            }}
                          >
                            Acknowledge
                          </ActionButton>
                        ) : null}
                      </div>
                    ) : s.pinned ? (
                      <span class="badge badge-late">pinned</span>
                    ) : (
                      <span class="muted">ok</span>
                    )}
                  </td>
                  <td class="row-actions">
                    <a class="btn" href={href(["browse", h.data!.source.repo, s.id])}>
                      Browse
                    </a>
                    <a class="btn" href={href(["restore"], { repo: h.data!.source.repo, snapshot: s.id })}>
                      Restore
                    </a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Drills</h2>
          {h.data.drills.length === 0 ? (
            <p class="muted">No restore drill yet: run one from Integrity.</p>
          ) : null}
          <table class="grid">
            <tbody>
              {h.data.drills.map((d) => (
                <tr key={d.id}>
                  <td>{time(d.time)}</td>
                  <td>
                    <span class={`badge ${d.ok ? "badge-protected" : "badge-failing"}`}>
                      {d.ok ? "passed" : "failed"}
                    </span>{" "}
                    {d.mode}
                  </td>
                  <td>
                    {plural(d.files, "file")}, {bytes(d.bytes)} in {d.seconds.toFixed(2)}s
                  </td>
                  <td class="small">
                    {d.firstFailure
                      ? `${d.firstFailure.path}: ${d.firstFailure.reason}`
                      : (d.engineCheck ?? "")}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </div>
  );
}
