import { useEffect, useState } from "preact/hooks";
import {
  api,
  type FilePreview,
  type FindResult,
  type Me,
  q,
  type SnapshotJson,
  type SourceRow,
} from "../api";
import { ErrorBox, Loading, usePoll } from "../components/common";
import { type FolderEntry, FolderList } from "../components/folder-list";
import { bytes, plural, time } from "../format";
import { go, href, type Route } from "../router";
import { SourcePicker } from "./history";

const IMAGE = /\.(png|jpe?g|gif|webp|bmp|ico|svg)$/i;

const join = (dir: string, name: string) => (dir === "/" ? `/${name}` : `${dir}/${name}`);

/** A file manager over one snapshot: folders of any size, preview, download, search. */
export function Browse({ me, route }: { me: Me; route: Route }) {
  const [repo, snapId] = [route.parts[1], route.parts[2]];
  const path = route.params.get("path") || "/";
  const [sort, setSort] = useState<{ by: string; order: "asc" | "desc" }>({ by: "name", order: "asc" });
  const [filter, setFilter] = useState("");
  const [selected, setSelected] = useState<FolderEntry | null>(null);
  const [preview, setPreview] = useState<FilePreview | null>(null);
  const [previewErr, setPreviewErr] = useState<unknown>(null);
  const [total, setTotal] = useState<number | null>(null);
  const [pattern, setPattern] = useState("");
  const [found, setFound] = useState<FindResult | null>(null);
  const [searching, setSearching] = useState(false);
  const snap = usePoll(
    () =>
      repo && snapId ? api<SnapshotJson>(`/api/repos/${repo}/snapshots/${snapId}`) : Promise.resolve(null),
    [repo, snapId],
    0,
  );
  const siblings = usePoll(
    () =>
      snap.data
        ? api<SnapshotJson[]>(
            `/api/repos/${repo}/snapshots${q({ host: snap.data.hostname })}&${snap.data.paths.map((p) => `path=${encodeURIComponent(p)}`).join("&")}`,
          )
        : Promise.resolve(null),
    [snap.data?.id],
    0,
  );
  useEffect(() => {
    setSelected(null);
    setPreview(null);
    setFilter("");
  }, [repo, snapId, path]);

  if (!repo || !snapId)
    return (
      <div>
        <h1>Browse</h1>
        <p class="muted">Pick a source: its newest snapshot opens.</p>
        <SourcePicker
          value={undefined}
          onPick={async (id) => {
            const s = await api<SourceRow>(`/api/sources/${encodeURIComponent(id)}`);
            if (s.newest) go(["browse", s.repo, s.newest.id]);
          }}
        />
      </div>
    );
  const base = `/api/repos/${encodeURIComponent(repo)}/snapshots/${snapId}`;
  const crumbs = path.split("/").filter(Boolean);
  const open = async (e: FolderEntry) => {
    if (e.type === "dir") {
      go(["browse", repo, snapId], { path: join(path, e.name) });
      return;
    }
    setSelected(e);
    setPreview(null);
    setPreviewErr(null);
    if (e.type === "file" && !IMAGE.test(e.name)) {
      try {
        setPreview(await api<FilePreview>(`${base}/file${q({ path: join(path, e.name), preview: 1 })}`));
      } catch (x) {
        setPreviewErr(x);
      }
    }
  };
  const head = (by: string, label: string, cls: string) => (
    <button
      type="button"
      class={`${cls} sortable linkish`}
      onClick={() => setSort((s) => ({ by, order: s.by === by && s.order === "asc" ? "desc" : "asc" }))}
    >
      {label}
      {sort.by === by ? (sort.order === "asc" ? " ▲" : " ▼") : ""}
    </button>
  );
  return (
    <div>
      <h1>Browse</h1>
      {snap.error ? <ErrorBox error={snap.error} /> : null}
      {/* Keyed blocks: the snapshot's toolbar replacing its spinner must not make Preact match the
          blocks below by position and mount the folder list again (a second request for a folder
          of 100,000 entries). */}
      {snap.data ? (
        <div class="toolbar" key="snapshot">
          <span>
            <strong>{snap.data.hostname}</strong>:{snap.data.paths.join(" ")}
          </span>
          <select
            name="snapshot"
            value={snapId}
            onChange={(e) => go(["browse", repo, e.currentTarget.value], { path })}
          >
            {/* An account snapshot has no siblings in the repository's listing (its fleet lists them). */}
            {(siblings.data?.some((s) => s.id === snapId) ? siblings.data : [snap.data])
              .slice()
              .reverse()
              .map((s) => (
                <option key={s.id} value={s.id}>
                  {time(s.time)} · {s.short_id}
                  {s.flagged ? " · flagged" : ""}
                </option>
              ))}
          </select>
        </div>
      ) : (
        <Loading key="snapshot-loading" />
      )}
      <div class="crumbs" data-testid="crumbs" key="crumbs">
        <a href={href(["browse", repo, snapId])}>/</a>
        {crumbs.map((c, i) => (
          <span key={i}>
            {i > 0 ? " / " : " "}
            <a href={href(["browse", repo, snapId], { path: `/${crumbs.slice(0, i + 1).join("/")}` })}>{c}</a>
          </span>
        ))}
        <span class="muted"> · {total === null ? "…" : plural(total, "entry")}</span>
      </div>
      <div class="toolbar" key="folder-tools">
        <input
          type="search"
          name="filter"
          placeholder="Filter this folder"
          value={filter}
          onInput={(e) => setFilter(e.currentTarget.value)}
        />
        <a class="btn" href={`${base}/archive${q({ path, format: "tar" })}`} download>
          Download folder (tar)
        </a>
        <a class="btn" href={`${base}/archive${q({ path, format: "zip" })}`} download>
          Download folder (zip)
        </a>
        {me.role !== "viewer" ? (
          <a class="btn btn-primary" href={href(["restore"], { repo, snapshot: snapId, path })}>
            Restore this folder…
          </a>
        ) : null}
      </div>
      <div class="browse" key="folder">
        <div class="browse-list">
          <div class="fhead">
            {head("name", "Name", "fname")}
            {head("size", "Size", "fsize")}
            {head("mtime", "Modified", "ftime")}
          </div>
          <FolderList
            base={base}
            path={path}
            sort={sort.by}
            order={sort.order}
            filter={filter}
            selected={selected?.name ?? null}
            onOpen={open}
            onTotal={setTotal}
          />
        </div>
        <aside class="preview" data-testid="preview">
          {selected ? (
            <>
              <div class="card-title">
                <strong>{selected.name}</strong>
              </div>
              <div class="muted small">
                {selected.type} · {bytes(selected.size)} · {time(selected.mtime)} · mode{" "}
                {selected.mode.toString(8)}
              </div>
              {selected.type === "file" ? (
                <div class="toolbar">
                  <a
                    class="btn btn-primary"
                    href={`${base}/file${q({ path: join(path, selected.name) })}`}
                    download={selected.name}
                    data-testid="download"
                  >
                    Download
                  </a>
                  {me.role !== "viewer" ? (
                    <a
                      class="btn"
                      href={href(["restore"], { repo, snapshot: snapId, path: join(path, selected.name) })}
                    >
                      Restore…
                    </a>
                  ) : null}
                </div>
              ) : null}
              {selected.type === "file" && IMAGE.test(selected.name) ? (
                <img
                  class="preview-img"
                  alt={selected.name}
                  src={`${base}/file${q({ path: join(path, selected.name), preview: 1 })}`}
                />
              ) : null}
              <ErrorBox error={previewErr} />
              {preview ? (
                preview.binary ? (
                  <p class="muted">binary file: no preview</p>
                ) : (
                  <>
                    <pre class="preview-text">{preview.text}</pre>
                    {preview.truncated ? <div class="muted small">the first 256 KiB are shown</div> : null}
                  </>
                )
              ) : null}
            </>
          ) : (
            <p class="muted">Select a file to preview it.</p>
          )}
        </aside>
      </div>
      <h2>Search by name across snapshots</h2>
      <form
        class="toolbar"
        onSubmit={async (e) => {
          e.preventDefault();
          setSearching(true);
          try {
            setFound(await api<FindResult>(`/api/repos/${repo}/find${q({ pattern, limit: 200 })}`));
          } finally {
            setSearching(false);
          }
        }}
      >
        <input
          name="pattern"
          placeholder="name or *.pattern"
          value={pattern}
          onInput={(e) => setPattern(e.currentTarget.value)}
        />
        <button type="submit" class="btn" disabled={!pattern || searching}>
          {searching ? "Searching…" : "Search"}
        </button>
      </form>
      {found ? (
        <table class="grid" data-testid="found">
          <tbody>
            {found.matches.map((m) => {
              const dir = m.path.slice(0, m.path.lastIndexOf("/")) || "/";
              return (
                <tr key={`${m.snapshot}${m.path}`}>
                  <td>{time(m.time)}</td>
                  <td>
                    <a href={href(["browse", repo, m.snapshot], { path: dir })}>{m.path}</a>
                  </td>
                  <td>{m.type === "file" ? bytes(m.size) : m.type}</td>
                </tr>
              );
            })}
            {found.matches.length === 0 ? (
              <tr>
                <td class="muted">nothing found</td>
              </tr>
            ) : null}
          </tbody>
        </table>
      ) : null}
      {found?.truncated ? <div class="muted">the first {found.matches.length} matches are shown</div> : null}
    </div>
  );
}
