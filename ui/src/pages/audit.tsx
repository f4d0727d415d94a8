import { type AuditEntries, api } from "../api";
import { ErrorBox, Loading, usePoll } from "../components/common";
import { time } from "../format";

/** The audit log (admins): every restore, download and destructive action, newest first. */
export function AuditPage() {
  const a = usePoll(() => api<AuditEntries>("/api/audit?limit=500"), [], 5000);
  if (a.error) return <ErrorBox error={a.error} />;
  if (!a.data) return <Loading />;
  return (
    <div>
      <h1>Audit log</h1>
      <table class="grid" data-testid="audit">
        <thead>
          <tr>
            <th>Time</th>
            <th>User</th>
            <th>Action</th>
            <th>On</th>
            <th>Outcome</th>
          </tr>
        </thead>
        <tbody>
          {a.data.entries.map((e, i) => (
            <tr key={`${e.time}-${i}`}>
              <td>{time(e.time)}</td>
              <td>
                {e.user} <span class="muted">({e.role})</span>
              </td>
              <td>{e.action}</td>
              <td class="mono small">{JSON.stringify(e.target)}</td>
              <td>
                {e.outcome}
                {e.detail ? <div class="muted small">{e.detail}</div> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
