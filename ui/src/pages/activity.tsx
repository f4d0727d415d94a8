import { type ActivityData, api, type Me } from "../api";
import { ActionButton, ErrorBox, Loading, TaskProgress, usePoll } from "../components/common";
import { ago, time } from "../format";

/** Running work with its progress and a cancel button; the backlog and why each item waits. */
export function Activity({ me }: { me: Me }) {
  const a = usePoll(() => api<ActivityData>("/api/activity"), [], 1000);
  if (a.error && !a.data) return <ErrorBox error={a.error} />;
  if (!a.data) return <Loading />;
  const running = a.data.tasks.filter((t) => t.state === "running" || t.state === "queued");
  const done = a.data.tasks.filter((t) => t.state !== "running" && t.state !== "queued");
  return (
    <div>
      <h1>Activity</h1>
      <h2>Running now</h2>
      {running.length === 0 ? <p class="muted">Nothing is running.</p> : null}
      {running.map((t) => (
        <div key={t.id} class="task-row">
          <TaskProgress task={t} />
          {t.cancellable && me.role !== "viewer" ? (
            <ActionButton
              kind="danger"
              onClick={async () => {
                await api(`/api/tasks/${t.id}/cancel`, { method: "POST" });
                a.reload();
              }}
            >
              Cancel
            </ActionButton>
          ) : null}
        </div>
      ))}
      <h2>Backlog</h2>
      {a.data.backlog.length === 0 ? <p class="muted">The config file has no jobs.</p> : null}
      <table class="grid">
        <thead>
          <tr>
            <th>Job</th>
            <th>Status</th>
            <th>Why</th>
            <th>Next run</th>
          </tr>
        </thead>
        <tbody>
          {a.data.backlog.map((b) => (
            <tr key={b.job}>
              <td>{b.job}</td>
              <td>
                <span class={`badge badge-task-${b.status}`}>{b.status}</span>
              </td>
              <td>{b.reason}</td>
              <td>{ago(b.nextRun)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Finished</h2>
      {done.length === 0 ? <p class="muted">Nothing finished yet since the console started.</p> : null}
      <table class="grid">
        <thead>
          <tr>
            <th>What</th>
            <th>Who</th>
            <th>Started</th>
            <th>Finished</th>
            <th>Outcome</th>
          </tr>
        </thead>
        <tbody>
          {done.map((t) => (
            <tr key={t.id}>
              <td>{t.title}</td>
              <td>{t.user}</td>
              <td>{time(t.started)}</td>
              <td>{time(t.finished)}</td>
              <td>
                <span class={`badge badge-task-${t.state}`}>{t.state}</span>
                {t.error ? <div class="bad small">{t.error.message}</div> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
