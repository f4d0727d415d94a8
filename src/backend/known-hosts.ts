import { createHash, createHmac } from "node:crypto";

/**
 * OpenSSH known_hosts files: which host keys are trusted for a host. Supports plain and hashed
 * (`|1|salt|hash`) host names, `[host]:port` for ports other than 22, comma-separated
 * patterns with `*`/`?` wildcards and `!` negation, and `@revoked` lines. `@cert-authority`
 * lines are ignored (host certificates are not supported).
 */
export interface KnownHostEntry {
  marker: "" | "revoked" | "cert-authority";
  hosts: string;
  keyType: string;
  key: Buffer;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split(/\s+/);
    let marker: KnownHostEntry["marker"] = "";
    if (f[0] === "@revoked" || f[0] === "@cert-authority") {
      marker = f[0] === "@revoked" ? "revoked" : "cert-authority";
      f.shift();
    }
    const [hosts, keyType, b64] = f;
    if (!hosts || !keyType || !b64) continue;
    const key = Buffer.from(b64, "base64");
    if (key.length === 0) continue;
    out.push({ marker, hosts, keyType, key });
  }
  return out;
}

/** The name a host is recorded under: `host` on port 22, else `[host]:port`. */
export function knownHostName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .toLowerCase()
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
  );
  return re.test(name);
}

/** Whether an entry's host field names `host:port`. */
export function hostMatches(hosts: string, host: string, port: number): boolean {
  const name = knownHostName(host, port);
  if (hosts.startsWith("|1|")) {
    const [, , salt, hash] = hosts.split("|");
    if (!salt || !hash) return false;
    const mac = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return mac === hash;
  }
  let matched = false;
  for (const p of hosts.split(",")) {
    if (p.startsWith("!")) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) {
      matched = true;
    }
  }
  return matched;
}

/** The algorithm name inside an SSH public key blob (`ssh-ed25519`, `ssh-rsa`, ...). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return "unknown";
  const n = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + n).toString("latin1");
}

/** `SHA256:...` as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

export type HostKeyVerdict = "trusted" | "unknown" | "changed" | "revoked";

/** Checks a host key the server presented against the entries for `host:port`. */
export function checkHostKey(
  entries: KnownHostEntry[],
  host: string,
  port: number,
  blob: Buffer,
): HostKeyVerdict {
  const mine = entries.filter((e) => e.marker !== "cert-authority" && hostMatches(e.hosts, host, port));
  if (mine.some((e) => e.marker === "revoked" && e.key.equals(blob))) return "revoked";
  const trusted = mine.filter((e) => e.marker === "");
  if (trusted.some((e) => e.key.equals(blob))) return "trusted";
  return trusted.length > 0 ? "changed" : "unknown";
}

/** Key types recorded for `host:port`, to ask the server for those first (as OpenSSH does). */
export function knownKeyTypes(entries: KnownHostEntry[], host: string, port: number): string[] {
  const types = new Set<string>();
  for (const e of entries) {
    if (e.marker === "" && hostMatches(e.hosts, host, port)) types.add(e.keyType);
  }
  return [...types];
}
