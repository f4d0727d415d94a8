import { PassThrough, Readable } from "node:stream";
import type { Hono } from "hono";
import { z } from "zod";
import { LifeboatError } from "../../core/errors.js";
import { cleanSnapshotPath, listFolder, MAX_FOLDER_PAGE, statInSnapshot } from "../../ops/inspect/browse.js";
import { type DiffChange, diffTrees } from "../../ops/inspect/diff.js";
import { dumpTar, fileContent, streamSink } from "../../ops/inspect/dump.js";
import { findInSnapshots } from "../../ops/inspect/find.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId as Snapshot } from "../../repo/snapshot.js";
import type { TreeNode } from "../../repo/tree.js";
import { resolveSubpath } from "../../snapshot/subpath.js";
import type { DiffResult, FilePreview, FindMatch, FindResult, FolderPage } from "./api-types.js";
import { audit, type ConsoleState, type Ctx, type Env, parse, repoById } from "./context.js";
import { zipTree } from "./zip.js";

/** Text shown in a preview at most; images up to PREVIEW_IMAGE bytes. */
const PREVIEW_TEXT = 256 * 1024;
const PREVIEW_IMAGE = 20 * 1024 * 1024;

const IMAGE_TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  bmp: "image/bmp",
  ico: "image/x-icon",
  svg: "image/svg+xml",
};

/** A download name for Content-Disposition (ASCII fallback plus the UTF-8 name). */
function disposition(kind: "attachment" | "inline", name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_") || "download";
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** A Node stream as the body of a web Response (backpressure kept, errors abort the response). */
const webBody = (s: Readable) => Readable.toWeb(s) as unknown as ReadableStream<Uint8Array>;

function fileStream(repo: Repository, node: TreeNode, what: string, limit = Infinity): Readable {
  return Readable.from(
    (async function* () {
      let sent = 0;
      for await (const chunk of fileContent(repo, node, what)) {
        if (sent + chunk.length >= limit) {
          yield chunk.subarray(0, limit - sent);
          return;
        }
        sent += chunk.length;
        yield chunk;
      }
    })(),
  );
}

/** Files whose first bytes hold a NUL are binary: previewed as "binary" rather than as text. */
function looksBinary(b: Buffer): boolean {
  return b.subarray(0, 8000).includes(0);
}

export function registerBrowse(app: Hono<Env>, st: ConsoleState): void {
  /**
   * Reads of a folder's tree under way, by repository, snapshot and path: requests for the same
   * folder arriving together (a page asking for its first page and for a sort, two tabs) share
   * one read and decode rather than each decoding an 18 MB tree on the one event loop; later
   * ones find it in the repository's tree cache.
   */
  const reading = new Map<string, Promise<void>>();
  const readFolderOnce = (id: string, repo: Repository, snap: Snapshot, path: string): Promise<void> => {
    const key = `${id}\0${snap.id}\0${path}`;
    let p = reading.get(key);
    if (!p) {
      p = (async () => {
        const at = await resolveSubpath(repo, snap, cleanSnapshotPath(path));
        if (at.kind === "dir") await repo.loadTree(at.tree);
      })()
        // listFolder reads it again and reports any error itself.
        .catch(() => {})
        .finally(() => reading.delete(key));
      reading.set(key, p);
    }
    return p;
  };

  const snapOf = async (c: Ctx) => {
    const r = repoById(st, c.req.param("repo") ?? "");
    return { r, repo: await r.open(), snap: await r.snapshot(c.req.param("id") ?? "") };
  };

  const treeQuery = z.object({
    path: z.string().max(4096).default("/"),
    offset: z.coerce.number().int().min(0).default(0),
    limit: z.coerce.number().int().min(1).max(MAX_FOLDER_PAGE).default(500),
    sort: z.enum(["name", "size", "mtime", "type"]).default("name"),
    order: z.enum(["asc", "desc"]).default("asc"),
    q: z.string().max(200).optional(),
  });
  app.get("/api/repos/:repo/snapshots/:id/tree", async (c) => {
    const q = parse(treeQuery, c.req.query());
    const { r, repo, snap } = await snapOf(c);
    await readFolderOnce(r.spec.id, repo, snap, q.path);
    return c.json(
      (await listFolder(repo, snap, q.path, {
        offset: q.offset,
        limit: q.limit,
        sort: q.sort,
        order: q.order,
        ...(q.q ? { filter: q.q } : {}),
      })) satisfies FolderPage,
    );
  });

  const fileQuery = z.object({
    path: z.string().min(1).max(4096),
    preview: z.enum(["0", "1"]).default("0"),
  });
  app.get("/api/repos/:repo/snapshots/:id/file", async (c) => {
    const q = parse(fileQuery, c.req.query());
    const { r, repo, snap } = await snapOf(c);
    const at = await statInSnapshot(repo, snap, q.path);
    if (!at.node || at.node.type !== "file")
      throw new LifeboatError(
        "USAGE",
        `${at.path} is ${at.node?.type === "symlink" ? `a link to ${at.node.target}` : "a folder"}, not a file`,
        "download a folder as tar or zip",
      );
    const node = at.node;
    const name = node.name;
    const headers: Record<string, string> = {
      "X-Content-Type-Options": "nosniff",
      // Whatever a backed-up file holds, it never runs as a page of the console.
      "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    };
    if (q.preview === "1") {
      const ext = name.includes(".") ? name.slice(name.lastIndexOf(".") + 1).toLowerCase() : "";
      const image = IMAGE_TYPES[ext];
      if (image && (node.size ?? 0) <= PREVIEW_IMAGE) {
        return new Response(webBody(fileStream(repo, node, `file ${at.path}`)), {
          headers: { ...headers, "Content-Type": image, "Content-Length": String(node.size ?? 0) },
        });
      }
      const chunks: Buffer[] = [];
      for await (const b of fileStream(repo, node, `file ${at.path}`, PREVIEW_TEXT)) chunks.push(b as Buffer);
      const head = Buffer.concat(chunks);
      return c.json({
        path: at.path,
        size: node.size ?? 0,
        binary: looksBinary(head),
        truncated: (node.size ?? 0) > head.length,
        text: looksBinary(head) ? null : head.toString("utf8"),
      } satisfies FilePreview);
    }
    await audit(
      st,
      c,
      "download",
      { repo: r.spec.id, snapshot: snap.id, path: at.path, bytes: node.size ?? 0 },
      "started",
    );
    return new Response(webBody(fileStream(repo, node, `file ${at.path}`)), {
      headers: {
        ...headers,
        "Content-Type": "application/octet-stream",
        "Content-Length": String(node.size ?? 0),
        "Content-Disposition": disposition("attachment", name),
      },
    });
  });

  const archiveQuery = z.object({
    path: z.string().max(4096).default("/"),
    format: z.enum(["tar", "zip"]).default("tar"),
  });
  app.get("/api/repos/:repo/snapshots/:id/archive", async (c) => {
    const q = parse(archiveQuery, c.req.query());
    const { r, repo, snap } = await snapOf(c);
    const at = await statInSnapshot(repo, snap, q.path);
    if (!at.tree) throw new LifeboatError("USAGE", `${at.path} is not a folder`, "download it as a file");
    const base =
      at.path === "/" ? `snapshot-${snap.id.slice(0, 8)}` : at.path.slice(at.path.lastIndexOf("/") + 1);
    await audit(
      st,
      c,
      "download",
      { repo: r.spec.id, snapshot: snap.id, path: at.path, format: q.format },
      "started",
    );
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    const tree = at.tree;
    const node = at.node;
    const produce =
      q.format === "tar"
        ? dumpTar(repo, tree, base, streamSink(out), node).then(() => {
            out.end();
          })
        : zipTree(repo, tree, base, out, node);
    produce.catch((e) => out.destroy(e instanceof Error ? e : new Error(String(e))));
    return new Response(webBody(out), {
      headers: {
        "Content-Type": q.format === "tar" ? "application/x-tar" : "application/zip",
        "Content-Disposition": disposition("attachment", `${base}.${q.format}`),
        "X-Content-Type-Options": "nosniff",
      },
    });
  });

  const findQuery = z.object({
    pattern: z.string().min(1).max(200),
    snapshots: z.enum(["latest", "all"]).default("all"),
    source: z.string().optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
  });
  app.get("/api/repos/:repo/find", async (c) => {
    const q = parse(findQuery, c.req.query());
    const r = repoById(st, c.req.param("repo"));
    const repo = await r.open();
    let snaps = await r.snapshots();
    if (q.snapshots === "latest") {
      const newest = new Map<string, (typeof snaps)[number]>();
      for (const s of snaps) newest.set(JSON.stringify([s.hostname, [...s.paths].sort()]), s);
      snaps = [...newest.values()];
    }
    // A plain word finds names containing it; a pattern with * ? [ is matched as a glob.
    const glob = /[*?[]/.test(q.pattern) ? q.pattern : `*${q.pattern}*`;
    const matches: FindMatch[] = [];
    const stop = new AbortController();
    try {
      await findInSnapshots(
        repo,
        [...snaps].reverse(),
        [glob],
        (m) => {
          if (matches.length >= q.limit) {
            stop.abort();
            throw new Error("enough");
          }
          matches.push({
            snapshot: m.snapshot.id,
            time: m.snapshot.time,
            host: m.snapshot.hostname,
            path: m.path,
            type: m.node.type,
            size: m.node.size ?? 0,
          });
        },
        { ignoreCase: true },
      );
    } catch (e) {
      if (!stop.signal.aborted) throw e;
    }
    return c.json({ matches, truncated: stop.signal.aborted } satisfies FindResult);
  });

  const diffQuery = z.object({
    a: z.string().regex(/^[0-9a-f]{64}$/, "a snapshot id (64 hex digits)"),
    b: z.string().regex(/^[0-9a-f]{64}$/, "a snapshot id (64 hex digits)"),
    limit: z.coerce.number().int().min(1).max(5000).default(500),
  });
  app.get("/api/repos/:repo/diff", async (c) => {
    const q = parse(diffQuery, c.req.query());
    const r = repoById(st, c.req.param("repo"));
    const [a, b] = [await r.snapshot(q.a), await r.snapshot(q.b)];
    const changes: DiffChange[] = [];
    const summary = await diffTrees(await r.open(), a.tree, b.tree, {
      onChange: (ch) => {
        if (changes.length < q.limit) changes.push(ch);
      },
    });
    const total = summary.added + summary.removed + summary.modified + summary.metadata + summary.typeChanged;
    return c.json({
      a: a.id,
      b: b.id,
      summary,
      changes,
      truncated: total > changes.length,
    } satisfies DiffResult);
  });
}
