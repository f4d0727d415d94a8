/**
 * `npm run bench:fleet-sim [-- SIZE...] [--no-write]`: the fleet scheduler (src/app/fleet) on a
 * simulated clock over 8 days for 1k, 10k, 100k and 1M accounts (or the SIZEs given), and the
 * figures written into docs/fleet-simulation.md (between its fleet-sim markers).
 *
 * The world: accounts spread over real timezones weighted like the population, a fixed number of
 * run slots (hosts x concurrency), backup durations from a lognormal mix, 2 % of accounts failing
 * often and the rest rarely, 0.1 % moving to another timezone mid-week, and one night (Asian
 * evening, UTC) when three quarters of the slots are gone for four hours. A dispatcher ticks every
 * 10 s: finished runs report back (`succeeded`/`failed`), then `due()` gets the rows whose
 * `nextDue` has come (a heap stands in for the store's index on next_due) plus last tick's
 * backlog, and the free slots. Only the fleet module's calls are timed as scheduling cost; the
 * simulation's own bookkeeping is not. Runs take no real time: it is the scheduler's CPU only.
 */
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  type AccountState,
  addAccount,
  changeAccount,
  due,
  type FleetFigures,
  failed,
  fleetFigures,
  fleetPolicy,
  isDue,
  MIN_NIGHT_GAP_MS,
  succeeded,
} from "../src/app/fleet/index.js";
import { accountSeconds, failureRate, rng, runSeconds, ZONES, zonePicker } from "./fleet-sim-world.js";

const H = 3_600_000;
const START = Date.parse("2025-10-25T12:00:00Z");
const END = Date.parse("2025-11-02T12:00:00Z"); // covers the EU (Oct 26) and US (Nov 2) fall-back nights
const TICK = 10_000;
const SHORT = {
  from: Date.parse("2025-10-29T16:00:00Z"),
  to: Date.parse("2025-10-29T20:00:00Z"),
  share: 0.25,
};
const ZONE_MOVE = { at: Date.parse("2025-10-28T12:00:00Z"), share: 0.001 };
const STATUS_EVERY = 24 * H;
const CONCURRENCY = 8;
const ACCOUNTS_PER_HOST = 8000;

const policy = fleetPolicy({ name: "sim" });

/**
 * CPU time of this process in ms (user + system). The scheduling cost is measured with it, not
 * with the wall clock: the machine is shared, and a wall clock counts the time others ran.
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** A binary min-heap of (time, account index). */
class Heap {
  keys = new Float64Array(1024);
  vals = new Int32Array(1024);
  size = 0;
  push(k: number, v: number): void {
    if (this.size === this.keys.length) {
      const keys = new Float64Array(this.size * 2);
      keys.set(this.keys);
      this.keys = keys;
      const vals = new Int32Array(this.size * 2);
      vals.set(this.vals);
      this.vals = vals;
    }
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.keys[p]! <= k) break;
      this.keys[i] = this.keys[p]!;
      this.vals[i] = this.vals[p]!;
      i = p;
    }
    this.keys[i] = k;
    this.vals[i] = v;
  }
  peek(): number {
    return this.size > 0 ? this.keys[0]! : Number.POSITIVE_INFINITY;
  }
  pop(): number {
    const top = this.vals[0]!;
    const k = this.keys[--this.size]!;
    const v = this.vals[this.size]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= this.size) break;
      const c = l + 1 < this.size && this.keys[l + 1]! < this.keys[l]! ? l + 1 : l;
      if (this.keys[c]! >= k) break;
      this.keys[i] = this.keys[c]!;
      this.vals[i] = this.vals[c]!;
      i = c;
    }
    this.keys[i] = k;
    this.vals[i] = v;
    return top;
  }
}

interface Result {
  accounts: number;
  slots: number;
  runs: number;
  failures: number;
  missed: number;
  missedShortNight: number;
  doubleRuns: number;
  zoneMoves: number;
  peakBacklog: number;
  backlogHours: number;
  worstAgeH: number;
  overRpoAccounts: number;
  overRpoShortNight: number;
  overRpoOtherNights: number;
  setupS: number;
  schedS: number;
  ticks: number;
  tickMeanMs: number;
  tickP99Ms: number;
  tickMaxMs: number;
  slowestTickAt: number;
  slowestTickRows: number;
  statusMs: number;
  statusAtPeak: FleetFigures | undefined;
  heapBytesPerAccount: number;
  cpuS: number;
  wallS: number;
  backlogByHour: Float64Array;
  runningByHour: Float64Array;
}

function simulate(n: number): Result {
  const wall0 = performance.now();
  const cpu0 = process.cpuUsage();
  const rand = rng(0xf1ee7 + n);
  const pickZone = zonePicker(rand);
  const slots = Math.ceil(n / ACCOUNTS_PER_HOST) * CONCURRENCY;
  const base = new Float32Array(n);
  const failRate = new Float32Array(n);
  const prevGood = new Float64Array(n);
  const prevOpen = new Float64Array(n).fill(Number.NaN);
  const stamp = new Int32Array(n);
  // Bits: 1 a gap between good snapshots exceeded the RPO; 2 by more than 2 h, ending in the 24 h
  // from the short night's start; 4 by more than 2 h, on another night.
  const overRpo = new Uint8Array(n);
  const jobStart = new Float64Array(n);
  const jobOk = new Uint8Array(n);
  const zones: string[] = [];
  for (let i = 0; i < n; i++) {
    zones.push(pickZone(i));
    base[i] = accountSeconds(rand);
    failRate[i] = failureRate(rand);
  }

  // The store: one row per account. Each starts with a good snapshot from "yesterday".
  (globalThis as { gc?: () => void }).gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const setup0 = cpuMs();
  const states: AccountState[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const s = addAccount(policy, { id: `u${i}`, timezone: zones[i]! }, START);
    states[i] = { ...s, newestGood: s.startAt - 24 * H };
  }
  const setupS = (cpuMs() - setup0) / 1000;
  (globalThis as { gc?: () => void }).gc?.();
  const heapBytesPerAccount = (process.memoryUsage().heapUsed - heapBefore) / n;
  for (let i = 0; i < n; i++) prevGood[i] = states[i]!.newestGood!;

  const index = (s: AccountState) => Number(s.account.id.slice(1));
  // The store's indexes: next_due, settle_at, and the urgency order of due rows (newest_good).
  // Heap entries are checked against the row when popped (a changed row leaves stale entries).
  const byNextDue = new Heap();
  const bySettle = new Heap();
  const byUrgency = new Heap();
  const nKey = new Float64Array(n).fill(Number.NaN);
  const sKey = new Float64Array(n).fill(Number.NaN);
  const uKey = new Float64Array(n).fill(Number.NaN);
  let backlog = 0; // rows due, not started: live entries of byUrgency
  const jobs = new Heap();
  const urgencyOf = (s: AccountState) => s.newestGood ?? Number.NEGATIVE_INFINITY;
  const leaveBacklog = (i: number) => {
    if (Number.isNaN(uKey[i]!)) return;
    uKey[i] = Number.NaN;
    backlog--;
  };
  const joinBacklog = (i: number) => {
    const k = urgencyOf(states[i]!);
    byUrgency.push(k, i);
    uKey[i] = k;
    backlog++;
  };
  /** Writes a row back, as the store would, with its next_due and settle_at. */
  const update = (i: number, s: AccountState) => {
    states[i] = s;
    leaveBacklog(i);
    if (s.nextDue !== Number.POSITIVE_INFINITY) {
      byNextDue.push(s.nextDue, i);
      nKey[i] = s.nextDue;
    }
    if (s.settleAt !== Number.POSITIVE_INFINITY) {
      bySettle.push(s.settleAt, i);
      sKey[i] = s.settleAt;
    }
  };
  for (let i = 0; i < n; i++) update(i, states[i]!);

  const hours = Math.ceil((END - START) / H);
  const backlogByHour = new Float64Array(hours);
  const runningByHour = new Float64Array(hours);
  const tickMs = new Float64Array(Math.ceil((END - START) / TICK));
  let ticks = 0;
  let schedMs = 0;
  let slowest = 0;
  let slowestTickAt = START;
  let slowestTickRows = 0;
  const statusMs: number[] = [];
  let statusAtPeak: FleetFigures | undefined;
  let peakBacklog = 0;
  let backlogTicks = 0;
  let runs = 0;
  let failures = 0;
  let missed = 0;
  let missedShortNight = 0;
  let doubleRuns = 0;
  let zoneMoves = 0;
  let worstGap = 0;
  let running = 0;
  let tickNo = 0;
  const finished: number[] = [];
  const finishedAt: number[] = [];

  for (let now = START; now < END; now += TICK) {
    tickNo++;
    const hour = Math.floor((now - START) / H);
    // Runs that ended report back.
    finished.length = 0;
    finishedAt.length = 0;
    while (jobs.peek() <= now) {
      finishedAt.push(jobs.peek());
      finished.push(jobs.pop());
    }
    const before: (number | undefined)[] = finished.map((i) => states[i]!.newestGood);
    const reported: AccountState[] = [];
    let tickSched = 0;
    const t0 = finished.length > 0 ? cpuMs() : 0;
    let missedHere = 0;
    for (let k = 0; k < finished.length; k++) {
      const i = finished[k]!;
      const s = states[i]!;
      const report = { key: s.current.key, at: finishedAt[k]! };
      const step = jobOk[i]
        ? succeeded(policy, s, { ...report, goodAt: jobStart[i]! })
        : failed(policy, s, report);
      reported.push(step.state);
      missedHere += step.missed.length;
    }
    if (finished.length > 0) tickSched += cpuMs() - t0;
    for (let k = 0; k < finished.length; k++) {
      const i = finished[k]!;
      const s = reported[k]!;
      update(i, s);
      running--;
      if (!jobOk[i]) {
        failures++;
      } else if (s.newestGood !== before[k]) {
        runs++;
        const gap = s.newestGood! - prevGood[i]!;
        worstGap = Math.max(worstGap, gap);
        if (gap > policy.rpoMs) overRpo[i]! |= 1;
        if (gap > policy.rpoMs + 2 * H) overRpo[i]! |= inShortNight(now) ? 2 : 4;
        prevGood[i] = s.newestGood!;
        const open = s.last!.opensAt;
        if (open - prevOpen[i]! < MIN_NIGHT_GAP_MS) doubleRuns++;
        prevOpen[i] = open;
      }
    }

    // Some accounts move to another timezone: the store writes the new zone and the row as
    // `advance` makes it (next window from the new zone).
    if (now === ZONE_MOVE.at) {
      const moving = Math.max(1, Math.round(n * ZONE_MOVE.share));
      for (let k = 0; k < moving; k++) {
        const i = Math.floor(rand() * n);
        const s = states[i]!;
        const zone = ZONES[Math.floor(rand() * ZONES.length)]![0];
        if (zone === s.account.timezone) continue;
        zoneMoves++;
        const t = cpuMs();
        const step = changeAccount(policy, s, { ...s.account, timezone: zone }, now);
        tickSched += cpuMs() - t;
        missedHere += step.missed.length;
        update(i, step.state);
      }
    }

    // Rows whose next_due came join the backlog (the urgency index) if they are due to start.
    while (byNextDue.peek() <= now) {
      const k = byNextDue.peek();
      const i = byNextDue.pop();
      if (nKey[i] !== k) continue;
      nKey[i] = Number.NaN;
      if (isDue(states[i]!, now) && Number.isNaN(uKey[i]!)) joinBacklog(i);
    }
    const running0 = running;
    const capacity = now >= SHORT.from && now < SHORT.to ? Math.ceil(slots * SHORT.share) : slots;
    const free = Math.max(0, capacity - running0);
    // The tick's rows: every row whose settle_at came, and the `free` most urgent due rows.
    const rows: AccountState[] = [];
    const take = (i: number) => {
      if (stamp[i] === tickNo) return;
      stamp[i] = tickNo;
      leaveBacklog(i);
      rows.push(states[i]!);
    };
    while (bySettle.peek() <= now) {
      const k = bySettle.peek();
      const i = bySettle.pop();
      if (sKey[i] !== k) continue;
      sKey[i] = Number.NaN;
      take(i);
    }
    for (let taken = 0; taken < free && byUrgency.size > 0; ) {
      const k = byUrgency.peek();
      const i = byUrgency.pop();
      if (uKey[i] !== k) continue;
      take(i);
      taken++;
    }
    const t1 = cpuMs();
    const tick = due(policy, rows, now, free);
    tickSched += cpuMs() - t1;
    schedMs += tickSched;
    if (tickSched > slowest) {
      slowest = tickSched;
      slowestTickAt = now;
      slowestTickRows = rows.length + finished.length;
    }
    tickMs[ticks++] = tickSched;

    for (const run of tick.start) {
      const i = index(run.state);
      update(i, run.state);
      const seconds = runSeconds(base[i]!, rand);
      const ok = rand() >= failRate[i]!;
      jobOk[i] = ok ? 1 : 0;
      jobStart[i] = now;
      jobs.push(now + Math.round((ok ? seconds : seconds * rand()) * 1000), i);
      running++;
    }
    for (const s of tick.changed) update(index(s), s);
    for (const s of tick.waiting) {
      const i = index(s);
      if (states[i] !== s) update(i, s);
      joinBacklog(i);
    }
    missedHere += tick.missed.length;
    missed += missedHere;
    if (inShortNight(now)) missedShortNight += missedHere;
    if (backlog > 0) backlogTicks++;
    peakBacklog = Math.max(peakBacklog, backlog);
    backlogByHour[hour] = Math.max(backlogByHour[hour]!, backlog);
    runningByHour[hour] = Math.max(runningByHour[hour]!, running);

    if ((now - START) % STATUS_EVERY === 0 || now === SHORT.to) {
      const t2 = cpuMs();
      const fig = fleetFigures(policy, states, now);
      statusMs.push(cpuMs() - t2);
      if (now === SHORT.to) statusAtPeak = fig;
    }
    if ((now - START) % (24 * H) === 0 && now > START)
      process.stderr.write(
        `  ${n} accounts: day ${(now - START) / (24 * H)} of 8, backlog peak ${peakBacklog}\n`,
      );
  }

  let worstAge = worstGap;
  let overRpoAccounts = 0;
  let overRpoShortNight = 0;
  let overRpoOtherNights = 0;
  for (let i = 0; i < n; i++) {
    const age = END - (states[i]!.newestGood ?? START);
    worstAge = Math.max(worstAge, age);
    if (overRpo[i]! & 1 || age > policy.rpoMs) overRpoAccounts++;
    if (overRpo[i]! & 2) overRpoShortNight++;
    if (overRpo[i]! & 4 || age > policy.rpoMs + 2 * H) overRpoOtherNights++;
  }
  const sorted = Float64Array.from(tickMs.subarray(0, ticks)).sort();
  const cpu = process.cpuUsage(cpu0);
  return {
    accounts: n,
    slots,
    runs,
    failures,
    missed,
    missedShortNight,
    doubleRuns,
    zoneMoves,
    peakBacklog,
    backlogHours: (backlogTicks * TICK) / H,
    worstAgeH: worstAge / H,
    overRpoAccounts,
    overRpoShortNight,
    overRpoOtherNights,
    setupS,
    schedS: schedMs / 1000,
    ticks,
    tickMeanMs: schedMs / ticks,
    tickP99Ms: sorted[Math.ceil(ticks * 0.99) - 1]!,
    tickMaxMs: sorted[ticks - 1]!,
    slowestTickAt,
    slowestTickRows,
    statusMs: statusMs.reduce((a, b) => a + b, 0) / statusMs.length,
    statusAtPeak,
    heapBytesPerAccount,
    cpuS: (cpu.user + cpu.system) / 1e6,
    wallS: (performance.now() - wall0) / 1000,
    backlogByHour,
    runningByHour,
  };
}

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const n0 = (x: number) => Math.round(x).toLocaleString("en-US");

/** Within the 24 hours from the start of the short night (the night and its aftermath). */
function inShortNight(t: number): boolean {
  return t >= SHORT.from && t < SHORT.from + 24 * H;
}

/** The largest backlog outside the 24 hours from the short night's start. */
function otherNights(r: Result): number {
  const from = Math.floor((SHORT.from - START) / H);
  let peak = 0;
  r.backlogByHour.forEach((b, h) => {
    if (h < from || h >= from + 24) peak = Math.max(peak, b);
  });
  return peak;
}

function report(results: Result[]): string {
  const lines: string[] = [];
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  lines.push(
    `Measured by \`npm run bench:fleet-sim\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} × ${cpu}, ` +
      `Node ${process.version}, tz data ${process.versions.tz ?? "?"}. Simulated ${new Date(START).toISOString().slice(0, 16)}Z to ` +
      `${new Date(END).toISOString().slice(0, 16)}Z (8 nights, with the EU and US fall-back nights), fleet window 01:00-05:00, ` +
      `RPO 24h, catch-up next-window, dispatcher tick ${TICK / 1000} s, ${CONCURRENCY} runs per host and one host per ` +
      `${n0(ACCOUNTS_PER_HOST)} accounts; on ${new Date(SHORT.from).toISOString().slice(0, 16)}Z-` +
      `${new Date(SHORT.to).toISOString().slice(11, 16)}Z only ${SHORT.share * 100} % of the slots. Costs are CPU time ` +
      `of the fleet module's calls (getrusage, so they include V8's garbage collection threads); the machine is shared, ` +
      `so the wall time of the whole simulation is longer than its CPU time.`,
  );
  lines.push("");
  const cols: [string, (r: Result) => string][] = [
    ["accounts", (r) => n0(r.accounts)],
    ["run slots", (r) => n0(r.slots)],
    ["good runs", (r) => n0(r.runs)],
    ["failed attempts", (r) => n0(r.failures)],
    ["missed windows (short night)", (r) => `${n0(r.missed)} (${n0(r.missedShortNight)})`],
    ["runs < 12 h apart", (r) => n0(r.doubleRuns)],
    ["timezone moves", (r) => n0(r.zoneMoves)],
    ["peak backlog: short night / other nights", (r) => `${n0(r.peakBacklog)} / ${n0(otherNights(r))}`],
    ["hours with backlog", (r) => f1(r.backlogHours)],
    ["worst RPO (h)", (r) => f1(r.worstAgeH)],
    ["accounts over RPO at some time", (r) => n0(r.overRpoAccounts)],
    [
      "… by > 2 h: short night / other nights",
      (r) => `${n0(r.overRpoShortNight)} / ${n0(r.overRpoOtherNights)}`,
    ],
    ["setup: addAccount for all (s)", (r) => f2(r.setupS)],
    ["scheduling CPU, 8 days (s)", (r) => f2(r.schedS)],
    [
      "scheduling CPU per tick: mean / p99 / max (ms)",
      (r) => `${f2(r.tickMeanMs)} / ${f2(r.tickP99Ms)} / ${f1(r.tickMaxMs)}`,
    ],
    ["status figures, all accounts (ms)", (r) => f1(r.statusMs)],
    ["heap per account (bytes)", (r) => n0(r.heapBytesPerAccount)],
    ["whole simulation: CPU / wall (s)", (r) => `${f1(r.cpuS)} / ${f1(r.wallS)}`],
  ];
  lines.push(`| | ${results.map((r) => n0(r.accounts)).join(" | ")} |`);
  lines.push(`|---|${results.map(() => "---:").join("|")}|`);
  for (const [name, get] of cols.slice(1)) lines.push(`| ${name} | ${results.map(get).join(" | ")} |`);
  lines.push("");
  lines.push(
    "Backlog per hour around the short night (UTC; the most accounts due but not started at a tick in that hour, " +
      "and the most runs at once; slots cut from 16:00 to 20:00):",
  );
  lines.push("");
  lines.push(`| hour (UTC) | ${results.map((r) => `${n0(r.accounts)}: backlog / running`).join(" | ")} |`);
  lines.push(`|---|${results.map(() => "---:").join("|")}|`);
  const first = Math.floor((SHORT.from - START) / H) - 2;
  for (let h = first; h < first + 14; h++) {
    const label = new Date(START + h * H).toISOString().slice(5, 16).replace("T", " ");
    lines.push(
      `| ${label} | ${results.map((r) => `${n0(r.backlogByHour[h]!)} / ${n0(r.runningByHour[h]!)}`).join(" | ")} |`,
    );
  }
  const big = results.at(-1)!;
  lines.push("");
  lines.push(
    `The slowest tick (${n0(big.accounts)} accounts) was at ${new Date(big.slowestTickAt).toISOString().slice(0, 16)}Z, ` +
      `with ${n0(big.slowestTickRows)} rows and reports.`,
  );
  const fig = big.statusAtPeak;
  if (fig) {
    lines.push("");
    lines.push(
      `Status figures of the ${n0(big.accounts)}-account fleet when the slots come back ` +
        `(${new Date(SHORT.to).toISOString().slice(0, 16)}Z): protected ${n0(fig.rpo.protected)}, ` +
        `at risk ${n0(fig.rpo["at-risk"])}, over RPO ${n0(fig.rpo["over-rpo"])}, never ${n0(fig.rpo.never)}; ` +
        `age p50 ${f1(fig.age.p50 / H)} h, p99 ${f1(fig.age.p99 / H)} h, max ${f1(fig.age.max / H)} h; ` +
        `backlog: due ${n0(fig.backlog.due)}, running ${n0(fig.backlog.running)}, done ${n0(fig.backlog.done)}, ` +
        `failed ${n0(fig.backlog.failed)}, missed ${n0(fig.backlog.missed)}.`,
    );
  }
  return lines.join("\n");
}

const args = process.argv.slice(2);
const write = !args.includes("--no-write");
const sizes = args.filter((a) => /^\d+$/.test(a)).map(Number);
const results: Result[] = [];
for (const n of sizes.length > 0 ? sizes : [1_000, 10_000, 100_000, 1_000_000]) {
  process.stderr.write(`simulating ${n} accounts...\n`);
  results.push(simulate(n));
}
const table = report(results);
console.log(table);
if (write) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const doc = path.resolve(here, "..", "..", "docs", "fleet-simulation.md");
  const begin = "<!-- fleet-sim:begin -->";
  const end = "<!-- fleet-sim:end -->";
  const md = readFileSync(doc, "utf8");
  const a = md.indexOf(begin);
  const b = md.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${doc} has no ${begin} ... ${end} section`);
  writeFileSync(doc, `${md.slice(0, a + begin.length)}\n${table}\n${md.slice(b)}`);
  process.stderr.write(`written to ${doc}\n`);
}
