import { useEffect, useRef, useState } from "preact/hooks";
import { api, type FolderEntry, type FolderPage, q } from "../api";

export type { FolderEntry };

import { bytes, time } from "../format";
import { Icon } from "./icons";

const ROW = 30;
const PAGE = 500;

/**
 * A folder of any size: the server answers pages of PAGE entries, and only the rows in view
 * (plus a margin) exist in the page, so 100,000 entries open as fast as 100.
 */
export function FolderList(props: {
  base: string;
  path: string;
  sort: string;
  order: "asc" | "desc";
  filter: string;
  selected: string | null;
  onOpen: (e: FolderEntry) => void;
  onTotal?: (n: number) => void;
}) {
  const [pages, setPages] = useState<Map<number, FolderEntry[]>>(new Map());
  const [total, setTotal] = useState<number | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [scroll, setScroll] = useState(0);
  const [height, setHeight] = useState(600);
  const box = useRef<HTMLDivElement>(null);
  const asked = useRef(new Set<number>());
  const key = `${props.base}|${props.path}|${props.sort}|${props.order}|${props.filter}`;
  const keyRef = useRef(key);

  const load = (n: number) => {
    if (asked.current.has(n)) return;
    asked.current.add(n);
    const k = keyRef.current;
    api<FolderPage>(
      `${props.base}/tree${q({ path: props.path, offset: n * PAGE, limit: PAGE, sort: props.sort, order: props.order, q: props.filter })}`,
    ).then(
      (p) => {
        if (keyRef.current !== k) return;
        setTotal(p.total);
        props.onTotal?.(p.total);
        setPages((m) => new Map(m).set(n, p.entries));
      },
      (e: Error) => {
        if (keyRef.current === k) setErr(e.message);
      },
    );
  };
  useEffect(() => {
    keyRef.current = key;
    asked.current = new Set();
    setPages(new Map());
    setTotal(null);
    setErr(null);
    setScroll(0);
    if (box.current) box.current.scrollTop = 0;
    load(0);
  }, [key]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setHeight(el.clientHeight || 600);
    measure();
    window.addEventListener("resize", measure);
    return () => window.removeEventListener("resize", measure);
  }, []);

  const first = Math.max(0, Math.floor(scroll / ROW) - 20);
  const last = Math.min(total ?? 0, Math.ceil((scroll + height) / ROW) + 20);
  useEffect(() => {
    if (total === null) return;
    for (let p = Math.floor(first / PAGE); p <= Math.floor(Math.max(first, last - 1) / PAGE); p++) load(p);
  }, [first, last, total, key]);

  const rows = [];
  for (let i = first; i < last; i++) {
    const e = pages.get(Math.floor(i / PAGE))?.[i % PAGE];
    rows.push(
      <button
        type="button"
        key={i}
        class={`frow ${e && e.name === props.selected ? "selected" : ""}`}
        style={{ top: `${i * ROW}px` }}
        data-name={e?.name}
        onClick={() => e && props.onOpen(e)}
      >
        {e ? (
          <>
            <span class="fname">
              <Icon kind={e.type === "dir" || e.type === "symlink" ? e.type : "file"} />
              {e.name}
              {e.type === "symlink" ? <span class="muted"> → {e.target}</span> : null}
            </span>
            <span class="fsize">{e.type === "file" ? bytes(e.size) : ""}</span>
            <span class="ftime">{time(e.mtime)}</span>
          </>
        ) : (
          <span class="muted">…</span>
        )}
      </button>,
    );
  }
  return (
    <div>
      {err ? <div class="error">{err}</div> : null}
      <div
        class="flist"
        ref={box}
        onScroll={(e) => setScroll(e.currentTarget.scrollTop)}
        data-testid="folder"
        data-total={total ?? ""}
        aria-busy={total === null}
      >
        {total === null && !err ? (
          <div class="loading">
            <span class="spinner" /> Opening folder…
          </div>
        ) : null}
        <div class="fspacer" style={{ height: `${(total ?? 0) * ROW}px` }}>
          {rows}
        </div>
      </div>
    </div>
  );
}
