import { promises as fs } from "node:fs";
import path from "node:path";
import { LifeboatError } from "../../core/errors.js";
import { NameClaims } from "../../core/names.js";
import type { Repository } from "../../repo/repository.js";
import type { Snapshot } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";
import { VERSION } from "../../version.js";
import { readNode, writeFileAtomic } from "../imap/mail-snapshot.js";
import {
  COLLECTION_STATE_FILE,
  type CollectionItem,
  type CollectionState,
  decodeCollectionState,
  KIND_DIR,
  KIND_EXT,
} from "./collection-state.js";
import type { CollectionKind } from "./discover.js";
import { calendarComponents, escapeText, foldLine } from "./ical.js";
import { rewriteTzidParams, TimezoneMerger, type TzidRenames } from "./ical-merge.js";

/** One collection of a DAV snapshot: its directory name, state, and item files. */
export interface DavSnapshotCollection {
  /** Directory name under addressbooks/ or calendars/. */
  name: string;
  state: CollectionState;
  files: Map<string, TreeNode>;
}

/** Walks a snapshot made by `lifeboat pull dav://...` and yields its collections of one kind. */
export async function* davCollections(
  repo: Repository,
  snapshot: Snapshot & { id?: string },
  kind: CollectionKind,
): AsyncIterable<DavSnapshotCollection> {
  if (snapshot.source !== "dav")
    throw new LifeboatError(
      "USAGE",
      `snapshot ${snapshot.id?.slice(0, 8) ?? ""} is not a contacts/calendars snapshot (source: ${snapshot.source ?? "files"})`,
      "pick a snapshot made by `lifeboat pull dav://...` (see `lifeboat snapshots`)",
    );
  const top = (await repo.loadTree(snapshot.tree)).nodes.find(
    (n) => n.name === KIND_DIR[kind] && n.type === "dir" && n.subtree,
  );
  if (!top?.subtree) return;
  for (const n of (await repo.loadTree(top.subtree)).nodes) {
    if (n.type !== "dir" || !n.subtree) continue;
    const nodes = (await repo.loadTree(n.subtree)).nodes;
    const stateNode = nodes.find((x) => x.name === COLLECTION_STATE_FILE && x.type === "file");
    if (!stateNode) continue;
    const what = `${KIND_DIR[kind]}/${n.name}/${COLLECTION_STATE_FILE}`;
    const state = decodeCollectionState(await readNode(repo, stateNode, what), what);
    const files = new Map(nodes.filter((x) => x.type === "file").map((x) => [x.name, x]));
    yield { name: n.name, state, files };
  }
}

/** Reads one item of a collection (every blob verified, the size checked). */
export async function readItem(
  repo: Repository,
  kind: CollectionKind,
  c: DavSnapshotCollection,
  item: CollectionItem,
): Promise<{ data: Buffer; node: TreeNode }> {
  const node = c.files.get(item.file);
  const what = `${KIND_DIR[kind]}/${c.name}/${item.file}`;
  if (!node)
    throw new LifeboatError(
      "CORRUPTION",
      `${what} is listed in ${COLLECTION_STATE_FILE} but missing from the snapshot`,
    );
  return { data: await readNode(repo, node, what), node };
}

export interface DavExportStats {
  collections: number;
  items: number;
  bytes: number;
  /** Combined files written (`<collection>.vcf` / `<collection>.ics`). */
  combined: number;
  /** Calendar items left out of the combined file because their structure is broken. */
  malformed: number;
  /** VTIMEZONEs left out of combined files because an identical one (same TZID) was already there. */
  timezonesDeduplicated: number;
  /** VTIMEZONEs given a new TZID in a combined file because another one with their TZID differs. */
  timezonesRenamed: number;
}

const nsToDate = (ns: string) => new Date(Number(BigInt(ns) / 1_000_000n));

/** Writes a file from pieces under a temporary name, fsyncs it, and renames it into place. */
async function writePiecesAtomic(file: string, pieces: AsyncIterable<string | Buffer>): Promise<number> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  const fh = await fs.open(tmp, "w", 0o600);
  let n = 0;
  try {
    for await (const p of pieces) {
      const b = typeof p === "string" ? Buffer.from(p, "utf8") : p;
      await fh.write(b);
      n += b.length;
    }
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await fs.rename(tmp, file);
  return n;
}

/**
 * `export contacts|calendars`: DIR/<collection>/<item>.vcf|.ics (bytes as pulled, mtime kept)
 * and one combined file per collection: DIR/<collection>.vcf (the vCards one after another) or
 * DIR/<collection>.ics (one VCALENDAR with every component, each distinct VTIMEZONE once, first;
 * see ical-merge.ts for TZIDs that Outlook reuses with different rules).
 * Every file is written under a temporary name and renamed into place.
 */
export async function exportDav(
  repo: Repository,
  snapshot: Snapshot & { id?: string },
  kind: CollectionKind,
  dir: string,
  onWarning?: (m: string) => void,
): Promise<DavExportStats> {
  const stats: DavExportStats = {
    collections: 0,
    items: 0,
    bytes: 0,
    combined: 0,
    malformed: 0,
    timezonesDeduplicated: 0,
    timezonesRenamed: 0,
  };
  const ext = KIND_EXT[kind];
  await fs.mkdir(dir, { recursive: true });
  // A folder and a combined file per collection: names that fit NAME_MAX, one per collection.
  const folders = new NameClaims();
  const files = new NameClaims();
  for await (const c of davCollections(repo, snapshot, kind)) {
    stats.collections++;
    const sub = path.join(dir, folders.claim(c.name, c.name));
    await fs.mkdir(sub, { recursive: true });
    const written: string[] = [];
    for (const item of c.state.items) {
      const { data, node } = await readItem(repo, kind, c, item);
      const file = path.join(sub, item.file);
      await writeFileAtomic(file, data, nsToDate(node.mtime));
      written.push(file);
      stats.items++;
      stats.bytes += data.length;
    }
    const combined = path.join(dir, files.claim(c.name, c.name, ext));
    if (kind === "addressbook") {
      await writePiecesAtomic(
        combined,
        (async function* () {
          for (const f of written) {
            const data = await fs.readFile(f);
            yield data;
            if (data.length > 0 && data[data.length - 1] !== 0x0a) yield "\r\n";
          }
        })(),
      );
    } else {
      // Pass 1 (over the files just written): which items are well-formed, and every VTIMEZONE.
      const zones = new TimezoneMerger();
      const good: { file: string; renames: TzidRenames | undefined }[] = [];
      for (const f of written) {
        const parsed = calendarComponents(await fs.readFile(f, "utf8"));
        if ("error" in parsed) {
          stats.malformed++;
          onWarning?.(`${path.relative(dir, f)}: ${parsed.error}; left out of ${path.basename(combined)}`);
          continue;
        }
        good.push({ file: f, renames: zones.add(parsed.components) });
      }
      zones.finish();
      stats.timezonesDeduplicated += zones.deduplicated;
      stats.timezonesRenamed += zones.renamed;
      const header = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        `PRODID:-//lifeboat//lifeboat ${VERSION}//EN`,
        ...(c.state.displayname ? foldLine(`X-WR-CALNAME:${escapeText(c.state.displayname)}`) : []),
      ];
      await writePiecesAtomic(
        combined,
        (async function* () {
          yield `${header.join("\r\n")}\r\n`;
          for (const lines of zones.timezones()) yield `${lines.join("\r\n")}\r\n`;
          // Pass 2: every other component, in the collection's order, its TZID parameters
          // pointing at the VTIMEZONE that came with it.
          for (const { file, renames } of good) {
            const parsed = calendarComponents(await fs.readFile(file, "utf8"));
            if ("error" in parsed) continue;
            for (const comp of parsed.components)
              if (comp.type !== "VTIMEZONE")
                yield `${(renames ? rewriteTzidParams(comp.lines, renames) : comp.lines).join("\r\n")}\r\n`;
          }
          yield "END:VCALENDAR\r\n";
        })(),
      );
    }
    stats.combined++;
  }
  return stats;
}
