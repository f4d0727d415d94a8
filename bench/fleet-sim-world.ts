/**
 * The simulated world of `bench/fleet-sim.ts`: where accounts live, how long their backups take,
 * how often they fail. Everything is drawn from a seeded generator, so a run repeats exactly.
 */

/**
 * Timezones weighted roughly like the world's population (per cent, 2024 figures rounded; a
 * country split over zones by where its people live). Many accounts in a few zones (China and
 * India are a third), a long tail, and the odd zones a scheduler must get right: ±14 h, 45- and
 * 30-minute offsets, Lord Howe's 30-minute DST, DST changes at midnight (Santiago, Havana).
 */
export const ZONES: readonly (readonly [string, number])[] = [
  ["Asia/Kolkata", 17.8],
  ["Asia/Shanghai", 17.5],
  ["Asia/Jakarta", 2.7],
  ["Asia/Makassar", 0.6],
  ["Asia/Karachi", 3.0],
  ["Africa/Lagos", 2.8],
  ["America/Sao_Paulo", 2.6],
  ["Asia/Dhaka", 2.2],
  ["America/New_York", 2.0],
  ["America/Chicago", 1.2],
  ["America/Denver", 0.3],
  ["America/Phoenix", 0.1],
  ["America/Los_Angeles", 0.65],
  ["America/Anchorage", 0.01],
  ["Pacific/Honolulu", 0.02],
  ["America/Mexico_City", 1.5],
  ["Asia/Tokyo", 1.5],
  ["Africa/Addis_Ababa", 1.6],
  ["Asia/Manila", 1.4],
  ["Africa/Cairo", 1.4],
  ["Africa/Kinshasa", 1.3],
  ["Europe/Moscow", 1.2],
  ["Asia/Yekaterinburg", 0.1],
  ["Asia/Novosibirsk", 0.1],
  ["Asia/Vladivostok", 0.02],
  ["Asia/Ho_Chi_Minh", 1.2],
  ["Asia/Tehran", 1.1],
  ["Europe/Istanbul", 1.1],
  ["Europe/Berlin", 1.0],
  ["Asia/Bangkok", 0.9],
  ["Europe/London", 0.85],
  ["Europe/Paris", 0.85],
  ["Africa/Dar_es_Salaam", 0.8],
  ["Africa/Johannesburg", 0.75],
  ["Europe/Rome", 0.73],
  ["Africa/Nairobi", 0.7],
  ["Asia/Yangon", 0.7],
  ["Africa/Kampala", 0.6],
  ["Asia/Seoul", 0.64],
  ["America/Bogota", 0.65],
  ["Europe/Madrid", 0.6],
  ["America/Argentina/Buenos_Aires", 0.57],
  ["Africa/Algiers", 0.56],
  ["Asia/Baghdad", 0.55],
  ["Asia/Kabul", 0.5],
  ["Europe/Warsaw", 0.48],
  ["Asia/Riyadh", 0.45],
  ["Asia/Tashkent", 0.44],
  ["America/Lima", 0.43],
  ["Asia/Kuala_Lumpur", 0.43],
  ["Asia/Kathmandu", 0.37],
  ["America/Caracas", 0.35],
  ["America/Toronto", 0.3],
  ["America/Vancouver", 0.07],
  ["Asia/Taipei", 0.29],
  ["Asia/Colombo", 0.28],
  ["America/Santiago", 0.25],
  ["Australia/Sydney", 0.2],
  ["Australia/Melbourne", 0.17],
  ["Australia/Brisbane", 0.07],
  ["Australia/Perth", 0.03],
  ["Australia/Adelaide", 0.02],
  ["America/Havana", 0.14],
  ["Asia/Dubai", 0.13],
  ["Asia/Jerusalem", 0.12],
  ["Europe/Athens", 0.12],
  ["Pacific/Auckland", 0.065],
  ["America/St_Johns", 0.007],
  ["Atlantic/Azores", 0.003],
  ["Pacific/Apia", 0.003],
  ["Pacific/Tongatapu", 0.001],
  ["Pacific/Chatham", 0.0001],
  ["Pacific/Kiritimati", 0.0001],
  ["Pacific/Pago_Pago", 0.0005],
  ["Australia/Lord_Howe", 0.00005],
  ["Etc/GMT+12", 0.00005],
];

/** mulberry32: a small seeded generator, uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function normal(rand: () => number): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** A zone drawn by weight; the first ZONES.length accounts get one zone each, so every zone is used. */
export function zonePicker(rand: () => number): (i: number) => string {
  const total = ZONES.reduce((s, [, w]) => s + w, 0);
  const cumulative: number[] = [];
  let c = 0;
  for (const [, w] of ZONES) {
    c += w / total;
    cumulative.push(c);
  }
  return (i) => {
    if (i < ZONES.length) return ZONES[i]![0];
    const r = rand();
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! < r) lo = mid + 1;
      else hi = mid;
    }
    return ZONES[lo]![0];
  };
}

/**
 * Backup duration of an account (seconds): most take a few seconds (lognormal, median 4 s), one
 * in twenty is big (median 2 minutes, some over 10). Each run varies around it by ~20 %.
 */
export function accountSeconds(rand: () => number): number {
  return rand() < 0.95 ? 4 * Math.exp(normal(rand)) : 120 * Math.exp(0.7 * normal(rand));
}

export function runSeconds(base: number, rand: () => number): number {
  return Math.max(0.2, base * Math.exp(0.2 * normal(rand)));
}

/** Chance that one attempt fails: 2 % of accounts are flaky (35 %), the rest rarely fail (0.2 %). */
export function failureRate(rand: () => number): number {
  return rand() < 0.02 ? 0.35 : 0.002;
}
