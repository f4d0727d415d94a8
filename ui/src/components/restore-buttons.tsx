import { useState } from "preact/hooks";
import { followTask, type Task } from "../api";
import { ActionButton, ErrorBox } from "./common";

/**
 * The two steps every restore form ends with (a path, an account, a whole fleet): a dry run,
 * then the restore itself as a task followed to its end; an error of either shows below them.
 * The restore stays disabled while a task it started is queued or running.
 */
export function RestoreButtons(props: {
  /** Form field names the browser tests click (`preview`/`restore` by default). */
  names?: [string, string];
  canPreview?: boolean;
  /** Whether the restore may start (a preview was shown, the form is complete). */
  canRestore: boolean;
  restoreLabel: string;
  restoreKind?: "primary" | "danger";
  task: Task | null;
  onPreview: () => Promise<void>;
  onRestore: () => Promise<Task>;
  onTask: (t: Task) => void;
}) {
  const [err, setErr] = useState<unknown>(null);
  const [previewName, restoreName] = props.names ?? ["preview", "restore"];
  const busy = props.task !== null && (props.task.state === "running" || props.task.state === "queued");
  return (
    <>
      <div class="toolbar">
        <ActionButton
          name={previewName}
          disabled={props.canPreview === false}
          onClick={async () => {
            setErr(null);
            try {
              await props.onPreview();
            } catch (e) {
              setErr(e);
            }
          }}
        >
          Preview (dry run)
        </ActionButton>
        <ActionButton
          name={restoreName}
          kind={props.restoreKind ?? "primary"}
          disabled={!props.canRestore || busy}
          onClick={async () => {
            setErr(null);
            try {
              const t = await props.onRestore();
              props.onTask(t);
              followTask(t.id, props.onTask);
            } catch (e) {
              setErr(e);
            }
          }}
        >
          {props.restoreLabel}
        </ActionButton>
      </div>
      <ErrorBox error={err} />
    </>
  );
}
