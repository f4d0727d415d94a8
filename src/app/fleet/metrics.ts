import http from "node:http";
import { LifeboatError } from "../../core/errors.js";
import type { FleetStatus } from "./status.js";

/**
 * `fleet run --metrics HOST:PORT`: the figures of `fleet status` for Prometheus at /metrics,
 * through prom-client (its own registry, so nothing global leaks into a library user's).
 */
export async function startMetrics(
  address: string,
  collect: () => Promise<FleetStatus[]>,
): Promise<{ url: string; close: () => Promise<void> }> {
  const m = /^(.*):(\d+)$/.exec(address);
  if (!m)
    throw new LifeboatError(
      "USAGE",
      `--metrics ${address} is not HOST:PORT`,
      "e.g. --metrics 127.0.0.1:9464",
    );
  const prom = await import("prom-client");
  const registry = new prom.Registry();
  const g = (name: string, help: string, labelNames: string[] = []) =>
    new prom.Gauge({ name, help, labelNames: ["fleet", ...labelNames], registers: [registry] });
  const accounts = g("lifeboat_fleet_accounts", "Accounts of the fleet by RPO status", ["status"]);
  const backlog = g("lifeboat_fleet_backlog", "Accounts by state in their current window", ["state"]);
  const age = g("lifeboat_fleet_snapshot_age_seconds", "Age of accounts' newest good snapshot", ["quantile"]);
  const window = g(
    "lifeboat_fleet_last_window_seconds",
    "Time from the first start to the last report in the last 24 h",
  );
  const runs = g("lifeboat_fleet_runs_24h", "Runs in the last 24 h by outcome", ["outcome"]);
  const proven = g(
    "lifeboat_fleet_drilled_fraction_30d",
    "Fraction of accounts proven restorable by a drill in 30 days",
  );
  const update = async () => {
    for (const s of await collect()) {
      const f = { fleet: s.fleet };
      accounts.set({ ...f, status: "protected" }, s.protected);
      accounts.set({ ...f, status: "at_risk" }, s.at_risk);
      accounts.set({ ...f, status: "over_rpo" }, s.over_rpo);
      accounts.set({ ...f, status: "never" }, s.never_backed_up);
      for (const [k, v] of Object.entries(s.backlog)) backlog.set({ ...f, state: k }, v);
      age.set({ ...f, quantile: "0.5" }, s.age_hours.p50 * 3600);
      age.set({ ...f, quantile: "0.99" }, s.age_hours.p99 * 3600);
      age.set({ ...f, quantile: "1" }, s.age_hours.max * 3600);
      window.set(f, s.last_window.seconds);
      for (const k of ["snapshots", "unchanged", "failed", "missed"] as const)
        runs.set({ ...f, outcome: k }, s.last_window[k]);
      proven.set(f, s.drills.fraction_30d);
    }
  };
  const server = http.createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end("see /metrics\n");
      return;
    }
    update()
      .then(() => registry.metrics())
      .then(
        (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
        (e) => res.writeHead(500).end(`${(e as Error).message}\n`),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) =>
      reject(
        new LifeboatError(
          "USAGE",
          `--metrics ${address}: ${(e as Error).message}`,
          "pick a free port, e.g. 127.0.0.1:9464",
        ),
      ),
    );
    server.listen(Number(m[2]), m[1] || "127.0.0.1", () => resolve());
  });
  const a = server.address() as { address: string; port: number };
  return {
    url: `http://${a.address}:${a.port}/metrics`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
