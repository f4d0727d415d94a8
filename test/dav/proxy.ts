import http from "node:http";
import type net from "node:net";

/**
 * A relay in front of the DAV server that records every request line (`METHOD /path`). With
 * `noSync`, it plays a server without RFC 6578: sync-token properties and the sync-collection
 * report are removed from PROPFIND answers and a sync-collection REPORT is refused with 501.
 */
export async function recordingProxy(upstreamPort: number) {
  const lines: string[] = [];
  const state = { noSync: false };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      lines.push(`${req.method} ${req.url}${body.includes("sync-collection") ? " [sync-collection]" : ""}`);
      if (state.noSync && req.method === "REPORT" && body.toString().includes("sync-collection")) {
        res.writeHead(501, { "Content-Type": "text/plain" });
        res.end("sync-collection not supported here");
        return;
      }
      const up = http.request(
        // Uncompressed answers, so that they can be rewritten (Radicale gzips when asked to).
        {
          host: "127.0.0.1",
          port: upstreamPort,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, "accept-encoding": "identity" },
        },
        (ur) => {
          const out: Buffer[] = [];
          ur.on("data", (d: Buffer) => out.push(d));
          ur.on("end", () => {
            let data = Buffer.concat(out);
            if (state.noSync && req.method === "PROPFIND" && ur.statusCode === 207) {
              const t = data
                .toString("utf8")
                .replace(/<sync-token\s*\/>|<sync-token>[^<]*<\/sync-token>/g, "")
                .replace(
                  /<supported-report><report><sync-collection\s*\/><\/report><\/supported-report>/g,
                  "",
                );
              data = Buffer.from(t, "utf8");
            }
            const headers = { ...ur.headers, "content-length": String(data.length) };
            delete headers["transfer-encoding"];
            res.writeHead(ur.statusCode ?? 502, headers);
            res.end(data);
          });
        },
      );
      up.on("error", () => {
        res.writeHead(502);
        res.end();
      });
      up.end(body);
    });
  });
  const sockets = new Set<net.Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    lines,
    state,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
