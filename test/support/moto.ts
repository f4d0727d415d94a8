/**
 * moto's S3 server (Python, `moto_server`) on 127.0.0.1: unlike s3rver it has bucket versioning
 * and Object Lock as S3 has them — a plain DeleteObject adds a delete marker, a delete naming a
 * locked version is refused with AccessDenied, governance retention can be lifted with
 * BypassGovernanceRetention. The tests use it for prune, undelete and retention. `client` is
 * an administrator's S3 client (what someone with the bucket's credentials can do).
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectRetentionCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { hasCommand } from "./cli.js";
import { freePort } from "./servers.js";

export interface MotoServer {
  port: number;
  endpoint: string;
  client: S3Client;
  /** `s3:http://127.0.0.1:PORT/BUCKET/PREFIX` */
  url(bucket: string, prefix: string): string;
  /** Credentials and region for the CLI (merge into baseEnv). */
  env(): Record<string, string>;
  /** A bucket with versioning and Object Lock (as S3 creates it), or a plain one. */
  createBucket(name: string, objectLock: boolean): Promise<void>;
  /** Every version and delete marker under a prefix. */
  versions(bucket: string, prefix: string): Promise<Version[]>;
  /** The lock of the current version of a key (undefined when it has none). */
  lockOf(bucket: string, key: string): Promise<{ mode: string; until: Date } | undefined>;
  /** What an administrator may do in governance mode: move a version's retention to `until`. */
  liftRetention(bucket: string, key: string, versionId: string, until: Date): Promise<void>;
  /** A plain delete, as someone with the credentials (or a careless script) would send it. */
  plainDelete(bucket: string, key: string): Promise<void>;
  stop(): Promise<void>;
}

export interface Version {
  key: string;
  versionId: string;
  deleteMarker: boolean;
  latest: boolean;
  size: number;
}

const CREDS = { accessKeyId: "lifeboat-test", secretAccessKey: "lifeboat-test-secret" };

/** Whether moto's server is installed (`pip install 'moto[server]'`). */
export const hasMoto = () => hasCommand("moto_server");

export async function startMoto(): Promise<MotoServer> {
  let child: ChildProcess | undefined;
  let port = 0;
  let log = "";
  for (let attempt = 0; attempt < 3 && !child; attempt++) {
    port = await freePort();
    const c = spawn("moto_server", ["-H", "127.0.0.1", "-p", String(port)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    c.stdout!.on("data", (d) => {
      log += d;
    });
    c.stderr!.on("data", (d) => {
      log += d;
    });
    const deadline = Date.now() + 30_000;
    let up = false;
    while (Date.now() < deadline && c.exitCode === null) {
      up = await fetch(`http://127.0.0.1:${port}/`).then(
        () => true,
        () => false,
      );
      if (up) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (up) child = c;
    else c.kill("SIGKILL");
  }
  if (!child) throw new Error(`moto_server did not start: ${log.slice(-2000)}`);
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: CREDS,
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  const proc = child;
  return {
    port,
    endpoint,
    client,
    url: (bucket, prefix) => `s3:${endpoint}/${bucket}/${prefix}`,
    env: () => ({
      AWS_ACCESS_KEY_ID: CREDS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey,
      AWS_REGION: "us-east-1",
      AWS_EC2_METADATA_DISABLED: "true",
    }),
    async createBucket(name, objectLock) {
      await client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: objectLock }));
    },
    async versions(bucket, prefix) {
      const out: Version[] = [];
      let keyMarker: string | undefined;
      let versionMarker: string | undefined;
      do {
        const r = await client.send(
          new ListObjectVersionsCommand({
            Bucket: bucket,
            Prefix: prefix,
            KeyMarker: keyMarker,
            VersionIdMarker: versionMarker,
          }),
        );
        for (const v of r.Versions ?? [])
          out.push({
            key: v.Key!,
            versionId: v.VersionId!,
            deleteMarker: false,
            latest: v.IsLatest === true,
            size: v.Size ?? 0,
          });
        for (const m of r.DeleteMarkers ?? [])
          out.push({
            key: m.Key!,
            versionId: m.VersionId!,
            deleteMarker: true,
            latest: m.IsLatest === true,
            size: 0,
          });
        keyMarker = r.IsTruncated ? r.NextKeyMarker : undefined;
        versionMarker = r.IsTruncated ? r.NextVersionIdMarker : undefined;
      } while (keyMarker);
      return out;
    },
    async lockOf(bucket, key) {
      const h = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return h.ObjectLockMode && h.ObjectLockRetainUntilDate
        ? { mode: h.ObjectLockMode, until: h.ObjectLockRetainUntilDate }
        : undefined;
    },
    async liftRetention(bucket, key, versionId, until) {
      await client.send(
        new PutObjectRetentionCommand({
          Bucket: bucket,
          Key: key,
          VersionId: versionId,
          BypassGovernanceRetention: true,
          Retention: { Mode: "GOVERNANCE", RetainUntilDate: until },
        }),
      );
    },
    async plainDelete(bucket, key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    async stop() {
      client.destroy();
      if (proc.exitCode !== null) return;
      const gone = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(t);
    },
  };
}
