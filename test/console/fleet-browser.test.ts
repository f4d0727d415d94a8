/**
 * The console's fleet pages in a real browser (Debian's Chromium driven by playwright-core, on
 * 127.0.0.1 only), over a fleet the real CLI backed up on two simulated nights: the overview's
 * fleet row, the fleet's accounts (searched by the server), an account's history, and the
 * restore of one account as it was at a time, whose bytes are compared; then the whole-service
 * restore's dry run and progress. Screenshots of each page go to docs/ui/.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { ensurePackages } from "../support/apt.js";
import { removeTempDir, tempDir } from "../support/cli.js";
import { type ConsoleServer, startConsole } from "../support/console.js";
import { type FleetFixture, makeFleetFixture } from "../support/fleet-console.js";

const SHOTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "docs", "ui");

let base: string;
let fx: FleetFixture;
let server: ConsoleServer;
let browser: Browser;
let page: Page;

const localInput = (d: Date) => {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};

async function shot(name: string): Promise<void> {
  await fs.mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

before(async () => {
  ensurePackages({ "/usr/bin/chromium": "chromium" });
  base = await tempDir("lifeboat-console-fleet-ui-");
  fx = await makeFleetFixture(base);
  server = await startConsole(fx.env);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
    ],
  });
  page = await (await browser.newContext({ viewport: { width: 1440, height: 900 } })).newPage();
  await page.goto(server.url);
  await page.fill("input[name=user]", "admin");
  await page.fill("input[name=token]", server.token);
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=me]");
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await removeTempDir(base);
});

test("the overview shows the fleet; its page lists the accounts, searched by the server", async () => {
  await page.goto(`${server.url}/#/overview`);
  await page.waitForSelector('tr[data-fleet="mail"] [data-count="protected"]');
  assert.equal(await page.textContent('tr[data-fleet="mail"] [data-testid=fleet-accounts]'), "6");
  await page.$eval("[data-testid=fleets]", (el) => el.scrollIntoView());
  await shot("overview-fleets");
  await page.click('tr[data-fleet="mail"] a[href="#/fleet/mail"]');
  await page.waitForSelector("[data-testid=accounts][data-total='6']");
  await page.fill("input[name=account-search]", "CARL");
  await page.waitForSelector("[data-testid=accounts][data-total='1']");
  await page.fill("input[name=account-search]", "");
  await page.waitForSelector("[data-testid=accounts][data-total='6']");
  await shot("fleet");
});

test("an account's history, and its restore to a time whose bytes match that night's", async () => {
  await page.click('tr[data-account="ann"] a >> text=ann');
  await page.waitForSelector("[data-testid=timeline] tbody tr:nth-child(2)");
  assert.equal((await page.$$("[data-testid=timeline] tbody tr")).length, 2, "two nights, two snapshots");
  const target = path.join(fx.restores, "ann-ui");
  await page.fill("[data-testid=restore-account] input[name=at]", localInput(fx.between));
  await page.fill("[data-testid=restore-account] input[name=target]", target);
  await page.click("[data-testid=restore-account] button[name=preview]");
  await page.waitForSelector("[data-testid=restore-preview], [data-testid=restore-account] .error");
  assert.equal(await page.$("[data-testid=restore-account] .error"), null);
  assert.match((await page.textContent("[data-testid=restore-preview]")) ?? "", /2 files/);
  await page.click("[data-testid=restore-account] button[name=restore]");
  await page.waitForSelector("[data-testid=restore-done]", { timeout: 60_000 });
  await shot("account");
  assert.equal(await fs.readFile(path.join(target, "Maildir", "cur", "1.eml"), "utf8"), fx.firstAnn);
  assert.ok(
    (await fs.readFile(path.join(target, "photo.bin"))).equals(
      await fs.readFile(path.join(fx.folder("ann"), "photo.bin")),
    ),
  );
  await assert.rejects(fs.stat(path.join(target, "Maildir", "cur", "2.eml")), "not yet there that night");
});

test("the whole-service restore: a dry run, then every account back with progress", async () => {
  await page.goto(`${server.url}/#/fleet/mail`);
  const target = path.join(fx.restores, "everyone");
  await page.fill("input[name=all-target]", target);
  await page.click("button[name=all-preview]");
  await page.waitForSelector("[data-testid=restore-all-preview]");
  assert.match((await page.textContent("[data-testid=restore-all-preview]")) ?? "", /6 accounts/);
  await page.click("button[name=all-restore]");
  await page.waitForSelector("[data-testid=restore-all-done]", { timeout: 60_000 });
  assert.match((await page.textContent("[data-testid=task-accounts]")) ?? "", /6 \/ 6 accounts/);
  await page.$eval("[data-testid=restore-all]", (el) => el.scrollIntoView());
  await shot("fleet-restore");
  for (const id of fx.ids)
    assert.ok(
      (await fs.readFile(path.join(target, id, "photo.bin"))).equals(
        await fs.readFile(path.join(fx.folder(id), "photo.bin")),
      ),
    );
  await page.goto(`${server.url}/#/integrity`);
  await page.waitForSelector('[data-testid=fleet-integrity] tr[data-fleet="mail"]');
  assert.match(
    (await page.textContent('tr[data-fleet="mail"] [data-testid=fleet-proven]')) ?? "",
    /of 6 accounts/,
  );
});
