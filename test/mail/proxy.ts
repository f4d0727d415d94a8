import net from "node:net";

/** A TCP relay to 127.0.0.1:`port` that records every line a client sends (IMAP commands). */
export async function recordingProxy(
  port: number,
): Promise<{ port: number; lines: string[]; close(): Promise<void> }> {
  const lines: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    sockets.add(client).add(upstream);
    let pending = "";
    client.on("data", (d: Buffer) => {
      pending += d.toString("latin1");
      const parts = pending.split("\r\n");
      pending = parts.pop() ?? "";
      lines.push(...parts);
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => client.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    lines,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** The command verbs of recorded IMAP lines (`A1 UID FETCH ...` → `UID FETCH`). */
export function commandVerbs(lines: string[]): Set<string> {
  const verbs = new Set<string>();
  for (const l of lines) {
    const m = /^\S+ (UID [A-Z]+|[A-Z]+)/i.exec(l);
    if (m) verbs.add(m[1]!.toUpperCase());
  }
  return verbs;
}
