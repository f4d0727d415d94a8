import { defaultLocations } from "../../app/default-repo.js";
import { type Notice, notify } from "../../app/notify.js";
import type { Backend } from "../../backend/backend.js";
import { openBackend } from "../../backend/open.js";
import { parseRetention, type Retention } from "../../backend/retention.js";
import { parseRate, throttled } from "../../backend/throttle.js";
import { LifeboatError } from "../../core/errors.js";
import { Repository } from "../../repo/repository.js";
import { Output } from "./output.js";
import { resolvePassword } from "./password.js";

/** Options every command accepts (see `lifeboat --help`). */
export interface GlobalOptions {
  repo?: string;
  passwordFile?: string;
  passwordCommand?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: number;
  notifyUrl?: string;
  notifyCommand?: string;
  notifyEmail?: string;
  config?: string;
  retentionDays?: string;
  retentionMode?: string;
  limitUpload?: string;
  limitDownload?: string;
}

/** What a command needs from the global options: output, the repository URL and password. */
export class CliContext {
  readonly out: Output;
  readonly opts: GlobalOptions;

  constructor(opts: GlobalOptions) {
    this.opts = opts;
    this.out = new Output({
      json: opts.json ?? false,
      quiet: opts.quiet ?? false,
      verbose: opts.verbose ?? 0,
    });
  }

  /** Sends a notice to the configured webhook/command (if any); problems become warnings. */
  async notify(notice: Notice): Promise<void> {
    const url = this.opts.notifyUrl ?? process.env.LIFEBOAT_NOTIFY_URL;
    const command = this.opts.notifyCommand ?? process.env.LIFEBOAT_NOTIFY_COMMAND;
    const email = this.opts.notifyEmail ?? process.env.LIFEBOAT_NOTIFY_EMAIL;
    if (!url && !command && !email) return;
    const problems = await notify(
      { url, command, email, smtpUrl: process.env.LIFEBOAT_SMTP_URL, from: process.env.LIFEBOAT_SMTP_FROM },
      { repository: this.repoLocation().url, ...notice },
    );
    for (const p of problems) this.out.warn(p);
  }

  /** A backend for a repository URL, with --limit-upload/--limit-download applied. */
  async backend(url: string): Promise<Backend> {
    let limits: { upload: number | undefined; download: number | undefined };
    try {
      limits = {
        upload: parseRate(this.opts.limitUpload ?? process.env.LIFEBOAT_LIMIT_UPLOAD, "--limit-upload"),
        download: parseRate(
          this.opts.limitDownload ?? process.env.LIFEBOAT_LIMIT_DOWNLOAD,
          "--limit-download",
        ),
      };
    } catch (e) {
      throw new LifeboatError("USAGE", (e as Error).message, "give KiB per second, e.g. --limit-upload 2048");
    }
    // Object Lock retention is the repository's (config.retention), applied by every writer.
    return throttled(await openBackend(url), limits);
  }

  /** --retention-days/--retention-mode (or LIFEBOAT_RETENTION_*, or the config file), if given. */
  retentionOption(): Retention | undefined {
    return parseRetention(
      this.opts.retentionDays ?? process.env.LIFEBOAT_RETENTION_DAYS,
      this.opts.retentionMode ?? process.env.LIFEBOAT_RETENTION_MODE,
    );
  }

  /**
   * The retention option against what the repository remembers. A repository without one
   * records it (once: from then on every writer applies it, with or without the option); one
   * that keeps another refuses, since changing it is `lifeboat retention set`.
   */
  async applyRetentionOption(repo: Repository): Promise<void> {
    const wanted = this.retentionOption();
    if (!wanted) return;
    const have = repo.retention;
    if (!have) {
      await repo.setRetention(wanted);
      this.out.info(
        `recorded the retention in the repository (${wanted.days} days, ${wanted.mode}): every writer applies it from now on, with or without --retention-days`,
      );
      return;
    }
    if (have.days !== wanted.days || have.mode !== wanted.mode)
      throw new LifeboatError(
        "USAGE",
        `--retention-days ${wanted.days} (${wanted.mode}) differs from the retention this repository keeps (${have.days} days, ${have.mode})`,
        `drop the option (the repository applies its own), or change it with \`lifeboat retention set --days ${wanted.days} --mode ${wanted.mode}\``,
      );
  }

  /** -r/--repo, then LIFEBOAT_REPOSITORY, then the default local repository. */
  repoLocation(): { url: string; isDefault: boolean } {
    const url = this.opts.repo ?? process.env.LIFEBOAT_REPOSITORY;
    if (url) return { url, isDefault: false };
    return { url: defaultLocations().repo, isDefault: true };
  }

  async password(prompt?: string): Promise<string> {
    const loc = this.repoLocation();
    return resolvePassword(
      {
        passwordFile: this.opts.passwordFile,
        passwordCommand: this.opts.passwordCommand,
        fallbackFile: loc.isDefault ? defaultLocations().passwordFile : undefined,
      },
      prompt,
    );
  }

  /** Opens the repository (-r, password options); `retentionOption: false` leaves the
   * --retention-* options alone (`lifeboat retention` itself); `warmRestorer`: see OpenOptions. */
  async openRepo(options: { retentionOption?: boolean; warmRestorer?: boolean } = {}): Promise<Repository> {
    const loc = this.repoLocation();
    const backend = await this.backend(loc.url);
    // Say "no repository here" before asking for a password that could not help.
    if (!(await Repository.exists(backend))) {
      if (loc.isDefault) {
        throw new LifeboatError(
          "REPO_NOT_FOUND",
          `no repository given and the default repository ${loc.url} does not exist yet`,
          "give -r/--repo (or LIFEBOAT_REPOSITORY), or run `lifeboat backup PATH` once to create the default one",
        );
      }
      throw Repository.notFound(backend);
    }
    const repo = await Repository.open(backend, await this.password(), {
      warmRestorer: options.warmRestorer ?? false,
    });
    if (options.retentionOption === false) return repo;
    try {
      await this.applyRetentionOption(repo);
    } catch (e) {
      await repo.close().catch(() => {});
      throw e;
    }
    return repo;
  }
}
