import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  ListObjectVersionsCommand,
  type ListObjectVersionsCommandOutput,
  PutObjectCommand,
  type PutObjectCommandInput,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { errnoCode, LifeboatError, RetainedError, UNREACHABLE_CODES } from "../core/errors.js";
import {
  type Backend,
  type GetOptions,
  type ObjectInfo,
  type ObjectVersion,
  objectName,
  type PutOptions,
  type VersionedStorage,
} from "./backend.js";
import {
  addAnswerBounds,
  S3_IDLE_MS,
  S3_MAX_OBJECT,
  S3_MAX_UNDECLARED,
  S3_MIN_RATE,
  S3AnswerError,
} from "./s3-bounds.js";

/** Where an S3 repository lives, as parsed from an `s3:` URL. */
export interface S3Location {
  /** `https://host:port` for a custom endpoint; undefined for AWS itself. */
  endpoint: string | undefined;
  /** Host name (for messages and the path-style decision). */
  host: string;
  bucket: string;
  /** Key prefix without leading or trailing slash; "" for the bucket root. */
  prefix: string;
  /** Region: named by an AWS host such as `s3.eu-west-1.amazonaws.com`, or given explicitly. */
  region?: string | undefined;
}

export interface S3BackendOptions extends S3Location {
  /** The URL as the user wrote it (for messages; it never holds secrets). */
  url: string;
  /** Path-style addressing (`host/bucket/key`); default: for every host that is not AWS. */
  pathStyle?: boolean;
  /** Attempts per request, including the first (the SDK retries with backoff). Default 5. */
  maxAttempts?: number;
  /** Objects of at least this many bytes go up as a multipart upload. Default 16 MiB. */
  multipartThreshold?: number;
  /** Part size of a multipart upload (at least 5 MiB on S3). Default 8 MiB. */
  partSize?: number;
  /** Keys per list request (S3's maximum and default is 1000); tests use small pages. */
  pageSize?: number;
  /** Explicit credentials; default is the SDK's chain (env, profile, SSO, instance role...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

const MiB = 1024 * 1024;

/**
 * Parses the part of an S3 URL after `s3:`:
 * `https://HOST[:PORT]/BUCKET[/PREFIX]`, `http://HOST:PORT/BUCKET[/PREFIX]` or
 * `HOST/BUCKET[/PREFIX]` (https; `s3.amazonaws.com` and `s3.REGION.amazonaws.com` mean AWS).
 */
export function parseS3Url(rest: string): S3Location {
  const bad = (why: string) =>
    new LifeboatError(
      "USAGE",
      `invalid S3 repository URL "s3:${rest}": ${why}`,
      "use s3:https://HOST[:PORT]/BUCKET[/PREFIX] or s3:s3.amazonaws.com/BUCKET[/PREFIX]",
    );
  let scheme = "https:";
  let hostPart: string;
  let pathPart: string;
  const m = /^(https?):\/\/([^/]+)(\/.*)?$/i.exec(rest);
  if (m) {
    scheme = `${m[1]!.toLowerCase()}:`;
    hostPart = m[2]!;
    pathPart = m[3] ?? "";
  } else {
    const slash = rest.indexOf("/");
    if (slash <= 0) throw bad("no bucket");
    hostPart = rest.slice(0, slash);
    pathPart = rest.slice(slash);
  }
  if (hostPart.includes("@"))
    throw bad("credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
  let url: URL;
  try {
    url = new URL(`${scheme}//${hostPart}`);
  } catch {
    throw bad(`bad host "${hostPart}"`);
  }
  const parts = pathPart.split("/").filter((p) => p !== "");
  const bucket = parts.shift();
  if (!bucket) throw bad("no bucket");
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) && !/^[A-Za-z0-9._-]{1,255}$/.test(bucket)) {
    throw bad(`bad bucket name "${bucket}"`);
  }
  const host = url.hostname.toLowerCase();
  const aws = /^s3(?:[.-]([a-z0-9-]+))?\.amazonaws\.com$/.exec(host);
  const isPlainAws = aws !== null && url.port === "" && scheme === "https:";
  return {
    endpoint: isPlainAws ? undefined : `${scheme}//${url.host}`,
    host: url.host,
    bucket,
    prefix: parts.join("/"),
    region: aws?.[1] && aws[1] !== "external-1" ? aws[1] : undefined,
  };
}

function envFlag(name: string): boolean | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  return !/^(0|false|no|off)$/i.test(v);
}

/** Region: the URL's AWS host, then AWS_REGION, AWS_DEFAULT_REGION, then us-east-1. */
export function s3Region(loc: Pick<S3Location, "region">): string {
  return loc.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1";
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").trim();
}

interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  errors?: unknown[];
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

const networkCodes = new Set([...UNREACHABLE_CODES, "ECONNABORTED", "ERR_SOCKET_CONNECTION_TIMEOUT"]);

function networkCode(e: unknown): string | undefined {
  const c = errnoCode(e);
  if (c && networkCodes.has(c)) return c;
  const inner = (e as SdkError).errors;
  if (Array.isArray(inner)) for (const x of inner) if (networkCode(x)) return networkCode(x);
  const cause = (e as { cause?: unknown }).cause;
  if (cause && cause !== e) return networkCode(cause);
  return undefined;
}

/**
 * Maps an SDK (or network) error to one LifeboatError with a one-line message and a hint.
 * `what` names the object or bucket the request was about.
 */
export function s3Error(e: unknown, loc: S3Location & { url: string }, what: string): LifeboatError {
  if (e instanceof LifeboatError) return e;
  const err = (e ?? {}) as SdkError;
  const name = err.Code ?? err.name ?? "";
  const status = err.$metadata?.httpStatusCode;
  const msg = oneLine(err.message ?? String(e));
  const endpoint = loc.endpoint ?? "AWS S3";
  const about = what === "" ? `bucket ${loc.bucket}` : what;
  if (e instanceof S3AnswerError) {
    if (e.problem === "too-large")
      return new LifeboatError(
        "STORAGE_ERROR",
        `the S3 endpoint ${endpoint} answered more than ${mib(e.bytes)} for ${about}; refused`,
        "check that the URL names an S3 server (not a proxy or another service answering in its place)",
        e,
      );
    return new LifeboatError(
      "UNREACHABLE",
      `the S3 endpoint ${endpoint} stopped answering ${about}: ${
        e.problem === "stalled"
          ? `nothing for ${S3_IDLE_MS / 1000} s`
          : `${e.bytes} bytes in ${S3_IDLE_MS / 1000} s, under ${S3_MIN_RATE / 1024} KiB/s`
      }, twice`,
      "check the S3 server's health and the network, then run the command again",
      e,
    );
  }
  const net = networkCode(e);
  if (net || name === "TimeoutError" || name === "RequestTimeout") {
    return new LifeboatError(
      "UNREACHABLE",
      `cannot reach the S3 endpoint ${endpoint}: ${net ?? name}${msg && !msg.includes(net ?? name) ? ` (${msg})` : ""}`,
      "check the host name, port and network (and that the S3 server is running)",
      e,
    );
  }
  switch (name) {
    case "NoSuchBucket":
      return new LifeboatError(
        "NOT_FOUND",
        `bucket ${loc.bucket} does not exist at ${endpoint}`,
        "create it (`lifeboat init` creates a missing bucket) or check the URL",
        e,
      );
    case "NoSuchKey":
    case "NotFound":
      return new LifeboatError("NOT_FOUND", `${loc.url}/${what} does not exist`, undefined, e);
    case "InvalidAccessKeyId":
      return new LifeboatError(
        "AUTH_FAILED",
        `the S3 server ${endpoint} does not know the access key id`,
        "check AWS_ACCESS_KEY_ID (or AWS_PROFILE / the credentials file)",
        e,
      );
    case "SignatureDoesNotMatch":
      return new LifeboatError(
        "AUTH_FAILED",
        `the S3 server ${endpoint} rejected the request signature: wrong secret access key`,
        "check AWS_SECRET_ACCESS_KEY (or AWS_PROFILE / the credentials file)",
        e,
      );
    case "ExpiredToken":
    case "InvalidToken":
    case "TokenRefreshRequired":
      return new LifeboatError(
        "AUTH_FAILED",
        `the S3 session token was rejected by ${endpoint} (${name})`,
        "refresh the credentials (AWS_SESSION_TOKEN, `aws sso login`, ...)",
        e,
      );
    case "CredentialsProviderError":
      return new LifeboatError(
        "AUTH_FAILED",
        "no S3 credentials found",
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials",
        e,
      );
    case "RequestTimeTooSkewed":
      return new LifeboatError(
        "AUTH_FAILED",
        `the S3 server ${endpoint} refused the request because this machine's clock is off by more than 15 minutes`,
        "set the system clock right (for example `timedatectl set-ntp true`), then run the command again",
        e,
      );
    case "AccessDenied":
    case "AllAccessDisabled":
    case "AccountProblem":
      return new LifeboatError(
        "PERMISSION_DENIED",
        `access denied by ${endpoint} to ${what === "" ? `bucket ${loc.bucket}` : `${loc.url}/${what}`}`,
        "the credentials lack a permission (s3:ListBucket, s3:GetObject, s3:PutObject, s3:DeleteObject); check the bucket and IAM policies",
        e,
      );
    case "PermanentRedirect":
    case "AuthorizationHeaderMalformed":
    case "IllegalLocationConstraintException":
      return new LifeboatError(
        "STORAGE_ERROR",
        `bucket ${loc.bucket} is in another region than ${s3Region(loc)}`,
        "set AWS_REGION to the bucket's region",
        e,
      );
    case "BucketAlreadyExists":
      return new LifeboatError(
        "PERMISSION_DENIED",
        `bucket ${loc.bucket} belongs to another account`,
        "bucket names are global on AWS; choose another bucket name",
        e,
      );
    case "InvalidBucketName":
      return new LifeboatError("USAGE", `invalid bucket name "${loc.bucket}"`, undefined, e);
    case "QuotaExceeded":
    case "XMinioStorageFull":
    case "InsufficientStorage":
    case "EntityTooLarge":
      return new LifeboatError(
        "STORAGE_FULL",
        `the S3 storage refused ${loc.url}/${what}: ${name}`,
        "free space or raise the quota of the bucket, then run the command again; nothing was damaged",
        e,
      );
  }
  if (status === 507) {
    return new LifeboatError(
      "STORAGE_FULL",
      `the S3 storage is full (HTTP 507) while writing ${loc.url}/${what}`,
      "free space or raise the quota of the bucket, then run the command again; nothing was damaged",
      e,
    );
  }
  if (status === 403) {
    return new LifeboatError(
      "AUTH_FAILED",
      `the S3 server ${endpoint} refused access to ${loc.url}/${what} (HTTP 403)`,
      "check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket policy",
      e,
    );
  }
  if (
    status === 502 ||
    status === 503 ||
    status === 504 ||
    name === "SlowDown" ||
    name === "ServiceUnavailable"
  ) {
    return new LifeboatError(
      "UNREACHABLE",
      `the S3 server ${endpoint} is unavailable (${name || `HTTP ${status}`}) after ${err.$metadata?.attempts ?? 1} attempts`,
      "wait and run the command again; check the S3 server's health",
      e,
    );
  }
  return new LifeboatError(
    "STORAGE_ERROR",
    `S3 error at ${loc.url}${what ? `/${what}` : ""}: ${name && !msg.startsWith(name) ? `${name}: ` : ""}${msg || `HTTP ${status}`}`,
    undefined,
    e,
  );
}

function mib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / (1024 * 1024))} MiB` : `${bytes} bytes`;
}

function isStatus(e: unknown, ...codes: number[]): boolean {
  const s = (e as SdkError | undefined)?.$metadata?.httpStatusCode;
  return s !== undefined && codes.includes(s);
}

function errName(e: unknown): string {
  const err = (e ?? {}) as SdkError;
  return err.Code ?? err.name ?? "";
}

/**
 * A repository in an S3 bucket (AWS, MinIO, Garage, Ceph RGW, ...), optionally under a key
 * prefix. Puts are a single PutObject (atomic by S3 semantics) or, from `multipartThreshold`, a
 * multipart upload that becomes visible only when completed and is aborted on failure. Requests
 * are retried by the SDK (`maxAttempts`, exponential backoff with jitter).
 */
export function s3Backend(options: S3BackendOptions): Backend {
  const loc = { ...options };
  const region = s3Region(options);
  const isAws = options.endpoint === undefined || /\.amazonaws\.com(?::\d+)?$/i.test(options.host);
  const pathStyle = options.pathStyle ?? envFlag("LIFEBOAT_S3_PATH_STYLE") ?? !isAws;
  const threshold = options.multipartThreshold ?? 16 * MiB;
  const partSize = options.partSize ?? 8 * MiB;
  const keyPrefix = options.prefix === "" ? "" : `${options.prefix}/`;
  const bucket = options.bucket;
  const agentOpts = { keepAlive: true, maxSockets: 32 };
  const config: S3ClientConfig = {
    region,
    forcePathStyle: pathStyle,
    maxAttempts: options.maxAttempts ?? 5,
    retryMode: "standard",
    followRegionRedirects: true,
    requestHandler: {
      connectionTimeout: 10_000,
      // No byte for this long (before the answer, or while sending): a stall (s3-bounds.ts).
      // `requestTimeout` would only log a warning: bodies are bounded by s3-bounds.ts instead.
      socketTimeout: S3_IDLE_MS,
      requestTimeout: 0,
      // Derived from requestTimeout otherwise (10 s): keep the SDK's "sockets busy" warning rare.
      socketAcquisitionWarningTimeout: 130_000,
      httpAgent: new http.Agent(agentOpts),
      httpsAgent: new https.Agent(agentOpts),
    },
  };
  if (options.endpoint !== undefined) config.endpoint = options.endpoint;
  if (!isAws) {
    // Most S3-compatible servers (older MinIO, Ceph, Garage, s3rver) reject the SDK's default
    // streaming CRC trailers; send checksums only when an operation requires them.
    config.requestChecksumCalculation = "WHEN_REQUIRED";
    config.responseChecksumValidation = "WHEN_REQUIRED";
  }
  if (options.credentials) config.credentials = options.credentials;
  // The SDK prints a multi-line deprecation notice for Node < 22 on stderr, which would break
  // the CLI's one-line errors and --json output; the user can still turn it back on.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const client = new S3Client(config);
  addAnswerBounds(client);
  const key = (name: string) => keyPrefix + objectName(name);
  const fail = (e: unknown, what: string) => s3Error(e, loc, what);

  /** "missing" (no bucket), "empty" (nothing under the prefix) or "used". */
  async function probe(): Promise<"missing" | "empty" | "used"> {
    try {
      const r = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: keyPrefix || undefined, MaxKeys: 1 }),
      );
      return (r.KeyCount ?? r.Contents?.length ?? 0) > 0 ? "used" : "empty";
    } catch (e) {
      if (errName(e) === "NoSuchBucket") return "missing";
      throw fail(e, "");
    }
  }

  /** Answers that mean "this server or these credentials cannot tell": not versioned, for us. */
  const unsupported = (e: unknown) => {
    const n = errName(e);
    return (
      n === "NotImplemented" ||
      n === "AccessDenied" ||
      n === "MethodNotAllowed" ||
      n === "ObjectLockConfigurationNotFoundError" ||
      isStatus(e, 400, 403, 405, 501)
    );
  };

  /** Whether the bucket keeps versions, asked once (GetBucketVersioning). */
  let versioning: Promise<boolean> | undefined;
  const isVersioned = (): Promise<boolean> => {
    versioning ??= client.send(new GetBucketVersioningCommand({ Bucket: bucket })).then(
      (r) => r.Status === "Enabled" || r.Status === "Suspended",
      (e) => {
        versioning = undefined; // a network error is asked again next time
        if (unsupported(e)) {
          versioning = Promise.resolve(false);
          return false;
        }
        throw fail(e, "");
      },
    );
    return versioning;
  };

  async function* listVersions(prefix: string): AsyncIterable<ObjectVersion> {
    const full = keyPrefix + prefix;
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    do {
      let r: ListObjectVersionsCommandOutput;
      try {
        r = await client.send(
          new ListObjectVersionsCommand({
            Bucket: bucket,
            Prefix: full || undefined,
            KeyMarker: keyMarker,
            VersionIdMarker: versionMarker,
            MaxKeys: options.pageSize,
          }),
        );
      } catch (e) {
        throw fail(e, prefix);
      }
      // Versions and markers come in two lists; merged, by name, newest first.
      const page: ObjectVersion[] = [];
      for (const v of r.Versions ?? [])
        if (v.Key?.startsWith(keyPrefix) && v.VersionId)
          page.push({
            name: v.Key.slice(keyPrefix.length),
            versionId: v.VersionId,
            size: v.Size ?? 0,
            modified: (v.LastModified ?? new Date(0)).toISOString(),
            deleteMarker: false,
            latest: v.IsLatest === true,
          });
      for (const m of r.DeleteMarkers ?? [])
        if (m.Key?.startsWith(keyPrefix) && m.VersionId)
          page.push({
            name: m.Key.slice(keyPrefix.length),
            versionId: m.VersionId,
            size: 0,
            modified: (m.LastModified ?? new Date(0)).toISOString(),
            deleteMarker: true,
            latest: m.IsLatest === true,
          });
      page.sort((a, b) =>
        a.name !== b.name
          ? a.name < b.name
            ? -1
            : 1
          : a.latest !== b.latest
            ? a.latest
              ? -1
              : 1
            : a.modified > b.modified
              ? -1
              : a.modified < b.modified
                ? 1
                : 0,
      );
      yield* page;
      keyMarker = r.IsTruncated ? r.NextKeyMarker : undefined;
      versionMarker = r.IsTruncated ? r.NextVersionIdMarker : undefined;
    } while (keyMarker);
  }

  /** Why a version cannot be deleted, if it is locked: its retention date or legal hold. */
  async function lockOf(
    name: string,
    versionId: string,
  ): Promise<{ until: Date | undefined; mode: RetainedError["mode"] } | undefined> {
    try {
      const h = await client.send(
        new HeadObjectCommand({ Bucket: bucket, Key: key(name), VersionId: versionId }),
      );
      if (h.ObjectLockLegalHoldStatus === "ON")
        return { until: h.ObjectLockRetainUntilDate, mode: "legal-hold" };
      const until = h.ObjectLockRetainUntilDate;
      if (until && until.getTime() > Date.now())
        return { until, mode: h.ObjectLockMode === "GOVERNANCE" ? "governance" : "compliance" };
    } catch {
      // A marker has no HEAD; a missing permission leaves the refusal as it was.
    }
    return undefined;
  }

  async function deleteVersion(name: string, versionId: string): Promise<void> {
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(name), VersionId: versionId }));
    } catch (e) {
      if (errName(e) === "NoSuchKey" || errName(e) === "NoSuchVersion" || isStatus(e, 404)) return;
      if (errName(e) === "AccessDenied" || isStatus(e, 403)) {
        const lock = await lockOf(name, versionId);
        if (lock)
          throw new RetainedError(
            name,
            `${loc.url}/${name} is under ${lock.mode === "legal-hold" ? "a legal hold" : `${lock.mode} retention until ${lock.until?.toISOString()}`}: the storage refuses to delete it`,
            lock.until,
            lock.mode,
            e,
          );
      }
      throw fail(e, name);
    }
  }

  /**
   * Deletes every version of a name, real versions first, then markers (so a refused, locked
   * version is never left hidden behind one). Refused versions are reported together.
   */
  async function deleteAllVersions(name: string): Promise<void> {
    const all: ObjectVersion[] = [];
    for await (const v of listVersions(name)) if (v.name === name) all.push(v);
    const refused: RetainedError[] = [];
    for (const v of [...all.filter((x) => !x.deleteMarker), ...all.filter((x) => x.deleteMarker)]) {
      try {
        await deleteVersion(name, v.versionId);
      } catch (e) {
        if (!(e instanceof RetainedError)) throw e;
        refused.push(e);
      }
    }
    if (refused.length === 0) return;
    const latest = refused.reduce((a, b) =>
      (b.retainUntil?.getTime() ?? Number.POSITIVE_INFINITY) >
      (a.retainUntil?.getTime() ?? Number.POSITIVE_INFINITY)
        ? b
        : a,
    );
    throw latest;
  }

  /**
   * One GetObject, its body read with bounds: never more than was asked (a server that ignores
   * the Range header is read only up to the asked bytes), than its Content-Length, or than
   * S3_MAX_UNDECLARED without one; the stall bounds of s3-bounds.ts apply while reading.
   */
  async function getOnce(name: string, opts?: GetOptions): Promise<Buffer> {
    const offset = opts?.offset ?? 0;
    let range: string | undefined;
    if (opts?.length !== undefined) range = `bytes=${offset}-${offset + opts.length - 1}`;
    else if (offset > 0) range = `bytes=${offset}-`;
    const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(name), Range: range }));
    const body = r.Body as Readable | undefined;
    if (!body) return Buffer.alloc(0);
    // Some servers answer a range with more than asked (s3rver ignores `bytes=0-0`, a proxy may
    // drop Range): the answer starts at `start` and what was asked is cut from it.
    const start = range === undefined ? 0 : Number(/^bytes (\d+)-/.exec(r.ContentRange ?? "")?.[1] ?? 0);
    const skip = offset - start;
    const declared = r.ContentLength;
    if (declared !== undefined && declared > S3_MAX_OBJECT) {
      body.destroy();
      throw new S3AnswerError("too-large", S3_MAX_OBJECT, false);
    }
    const want = opts?.length === undefined ? undefined : skip + opts.length;
    const limit = declared ?? (want !== undefined ? Math.max(want, 0) : S3_MAX_UNDECLARED);
    const chunks: Buffer[] = [];
    let got = 0;
    try {
      for await (const chunk of body) {
        const c = chunk as Buffer;
        chunks.push(c);
        got += c.length;
        if (want !== undefined && got >= want) break; // enough: the rest is not read
        if (got > limit) throw new S3AnswerError("too-large", limit, false);
      }
    } finally {
      if (!body.readableEnded) body.destroy();
    }
    let buf = Buffer.concat(chunks, got);
    if (range !== undefined && (skip !== 0 || (want !== undefined && buf.length > want)))
      buf = buf.subarray(Math.max(skip, 0), want);
    return buf;
  }

  const versions: VersionedStorage = {
    async state() {
      const versioning = await isVersioned();
      let objectLock: boolean | undefined;
      try {
        const r = await client.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
        objectLock = r.ObjectLockConfiguration?.ObjectLockEnabled === "Enabled";
      } catch (e) {
        if (errName(e) === "ObjectLockConfigurationNotFoundError") objectLock = false;
        else if (!unsupported(e)) throw fail(e, "");
      }
      return { versioning, objectLock };
    },
    list: listVersions,
    deleteVersion: (name, versionId) => deleteVersion(objectName(name), versionId),
  };

  return {
    location: options.url,
    capabilities: { retention: true, appendOnly: false },
    versions,

    async exists() {
      // The config object marks a repository; a HEAD is the cheapest look. Anything else under
      // the prefix (a half-made repository) also counts. A 403/404 HEAD has no body, so the
      // listing is what tells a missing bucket or a wrong key apart.
      try {
        await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key("config") }));
        return true;
      } catch (e) {
        if (!isStatus(e, 403, 404) && errName(e) !== "NotFound") throw fail(e, "config");
      }
      return (await probe()) === "used";
    },

    async create() {
      if ((await probe()) !== "missing") return;
      try {
        await client.send(
          new CreateBucketCommand({
            Bucket: bucket,
            ...(isAws && region !== "us-east-1"
              ? { CreateBucketConfiguration: { LocationConstraint: region as never } }
              : {}),
          }),
        );
      } catch (e) {
        if (errName(e) === "BucketAlreadyOwnedByYou") return;
        const err = fail(e, "");
        if (err.code === "PERMISSION_DENIED" || err.code === "AUTH_FAILED") {
          throw new LifeboatError(
            err.code,
            `bucket ${bucket} does not exist and these credentials may not create it`,
            "create the bucket yourself (or grant s3:CreateBucket), or check the URL",
            e,
          );
        }
        throw err;
      }
    },

    async get(name: string, opts?: GetOptions) {
      if (opts?.length === 0) return Buffer.alloc(0);
      // A body that stalls is read once more (the SDK retries only what it reads itself).
      for (let attempt = 1; ; attempt++) {
        try {
          return await getOnce(name, opts);
        } catch (e) {
          // A range that starts at or past the end: the same as a short read at the end locally.
          if (errName(e) === "InvalidRange" || isStatus(e, 416)) return Buffer.alloc(0);
          if (attempt < 2 && e instanceof S3AnswerError && e.problem !== "too-large") continue;
          throw fail(e, name);
        }
      }
    },

    async stat(name: string) {
      try {
        const r = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key(name) }));
        return { name, size: r.ContentLength ?? 0 };
      } catch (e) {
        if (isStatus(e, 404) || errName(e) === "NotFound" || errName(e) === "NoSuchKey") return undefined;
        throw fail(e, name);
      }
    },

    async put(name: string, data: Buffer, opts?: PutOptions) {
      const params: PutObjectCommandInput = { Bucket: bucket, Key: key(name), Body: data };
      if (opts?.retainUntil) {
        params.ObjectLockRetainUntilDate = opts.retainUntil;
        params.ObjectLockMode = opts.retentionMode === "governance" ? "GOVERNANCE" : "COMPLIANCE";
      }
      try {
        if (data.length < threshold) {
          // Content-MD5 lets the server refuse bytes damaged in transit (and S3 requires an
          // integrity header on puts with Object Lock retention).
          params.ContentMD5 = createHash("md5").update(data).digest("base64");
          params.ContentLength = data.length;
          await client.send(new PutObjectCommand(params));
        } else {
          if (opts?.retainUntil) params.ChecksumAlgorithm = "CRC32";
          // A multipart upload is invisible until completed; on failure it is aborted here
          // (not by lib-storage, whose abort error would replace the real one) so no parts
          // linger. Servers without AbortMultipartUpload keep them until a lifecycle rule.
          const upload = new Upload({
            client,
            params,
            partSize: Math.max(partSize, 5 * MiB),
            queueSize: 4,
            leavePartsOnError: true,
          });
          try {
            await upload.done();
          } catch (e) {
            if (upload.uploadId) {
              await client
                .send(
                  new AbortMultipartUploadCommand({
                    Bucket: bucket,
                    Key: params.Key,
                    UploadId: upload.uploadId,
                  }),
                )
                .catch(() => {});
            }
            throw e;
          }
        }
      } catch (e) {
        throw fail(e, name);
      }
    },

    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      const full = keyPrefix + prefix;
      let token: string | undefined;
      do {
        let r: ListObjectsV2CommandOutput;
        try {
          r = await client.send(
            new ListObjectsV2Command({
              Bucket: bucket,
              Prefix: full || undefined,
              ContinuationToken: token,
              MaxKeys: options.pageSize,
            }),
          );
        } catch (e) {
          throw fail(e, prefix);
        }
        for (const o of r.Contents ?? []) {
          if (!o.Key?.startsWith(keyPrefix)) continue;
          yield { name: o.Key.slice(keyPrefix.length), size: o.Size ?? 0 };
        }
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    },

    async delete(name: string) {
      // On a versioned bucket a plain delete only adds a marker: remove the versions instead.
      if (await isVersioned()) return deleteAllVersions(objectName(name));
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(name) }));
      } catch (e) {
        if (errName(e) === "NoSuchKey" || isStatus(e, 404)) return;
        throw fail(e, name);
      }
    },

    async close() {
      client.destroy();
    },
  };
}
