// Drives the appliance's web UI in Debian's headless chromium, as a person would:
// log in, start a backup of the demo disk, watch the progress bar reach done, restore
// the backup to a file, and take a screenshot of every page on the way.
//
//   node tests/browser/run.mjs <base-url> <password> <screenshot-dir>
//
// Prints one JSON line with what it saw (job ids, backup id, checksums) and exits 0, or
// prints the failure and exits 1. CHROMIUM overrides /usr/bin/chromium;
// APPLIANCE_TIMEOUT_FACTOR stretches the waits like the Rust harness does.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, password, outdir] = process.argv.slice(2);
if (!base || !password || !outdir) {
  console.error("usage: node run.mjs <base-url> <password> <screenshot-dir>");
  process.exit(2);
}
const factor = Number(process.env.APPLIANCE_TIMEOUT_FACTOR || "1") || 1;
const JOB_TIMEOUT = 600_000 * factor;
const STEP_TIMEOUT = 60_000 * factor;

mkdirSync(outdir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "appliance-chromium-"));
const seen = {};

function step(text) {
  console.error(`browser: ${text}`);
}

async function shot(page, name) {
  const path = join(outdir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  step(`screenshot ${path}`);
}

/** Waits until the job shown on the current job page has finished; returns its state. */
async function waitJob(page, id) {
  const badge = page.locator(`[data-job-state="${id}"]`).first();
  await page.waitForFunction(
    (jobId) => {
      const el = document.querySelector(`.progress[data-job="${jobId}"]`);
      return el && ["done", "failed", "cancelled"].includes(el.dataset.state);
    },
    id,
    { timeout: JOB_TIMEOUT, polling: 500 },
  );
  // The page reloads once to show the result; let it settle.
  await page.waitForTimeout(1500);
  await page.waitForLoadState("load");
  return (await badge.textContent()).trim();
}

function jobIdFromUrl(page) {
  const m = new URL(page.url()).pathname.match(/^\/jobs\/(\d+)$/);
  if (!m) throw new Error(`expected a job page, got ${page.url()}`);
  return m[1];
}

async function flashText(page) {
  const flashes = await page.locator(".flash").allTextContents();
  return flashes.map((t) => t.trim()).join(" | ");
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  ignoreHTTPSErrors: true,
  viewport: { width: 1366, height: 900 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
context.setDefaultTimeout(STEP_TIMEOUT);
let failed = null;
try {
  const page = await context.newPage();
  page.on("pageerror", (err) => {
    failed = failed || new Error(`JavaScript error on ${page.url()}: ${err.message}`);
  });

  step("open the dashboard without a session: expect the login page");
  await page.goto(`${base}/`);
  if (!new URL(page.url()).pathname.startsWith("/login")) {
    throw new Error(`not sent to the login page: ${page.url()}`);
  }
  await shot(page, "01-login");

  step("a wrong password is refused with a message");
  await page.fill('input[name="password"]', "not-the-password");
  await page.click('button[type="submit"]');
  const refusal = await flashText(page);
  if (!refusal.includes("Wrong user name or password")) {
    throw new Error(`no refusal message: ${refusal}`);
  }

  step("log in");
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
  await page.waitForURL(`${base}/`);
  await page.locator("h1", { hasText: "Dashboard" }).waitFor();
  await shot(page, "02-dashboard");

  step("disks, snapshots, settings pages");
  await page.click('nav a[href="/disks"]');
  await page.locator("td", { hasText: "serial:prod0" }).first().waitFor();
  await shot(page, "03-disks");
  await page.click('a[href="/disks/serial:prod0"]');
  await page.locator("h1", { hasText: "Disk" }).waitFor();
  await shot(page, "04-disk-prod0");
  await page.click('nav a[href="/snapshots"]');
  await shot(page, "05-snapshots");

  step("create a snapshot of prod0 to take later, take it from its page, release it");
  await page.check('input[name="devices"][value="serial:prod0"]');
  await page.selectOption('select[name="scratch"]', "serial:scratch0");
  await page.check('input[name="later"]');
  await page.click('button:has-text("Take snapshot")');
  await page.waitForURL(/\/snapshots\/[0-9a-f-]{36}$/);
  const snapState = page.locator("h2 .state").first();
  if ((await snapState.textContent()).trim() !== "created") {
    throw new Error(`a snapshot to take later shows ${await snapState.textContent()}: ${await flashText(page)}`);
  }
  await shot(page, "05a-snapshot-created");
  await page.click('button:has-text("Take snapshot now")');
  await page.locator("h2 .state", { hasText: "taken" }).waitFor();
  seen.snapshot_take_flash = await flashText(page);
  const images = await page.locator("dd code").allTextContents();
  if (!images.some((i) => i.startsWith("/dev/blksnap-image"))) {
    throw new Error(`no image after the take: ${images.join(", ")} (${seen.snapshot_take_flash})`);
  }
  await shot(page, "05b-snapshot-taken");
  await page.click('button:has-text("Release snapshot")');
  await page.waitForURL(/\/snapshots$/);
  seen.snapshot_release_flash = await flashText(page);
  await page.locator("td", { hasText: "No snapshot is held." }).waitFor();
  await page.click('nav a[href="/settings"]');
  await page.locator("h2", { hasText: "Backup target" }).waitFor();
  await shot(page, "06-settings");

  step("start a full backup of prod0 with scratch0 as difference storage");
  await page.click('nav a[href="/backups"]');
  const form = page.locator("#backup-form");
  await form.locator('select[name="device"]').selectOption("serial:prod0");
  await form.locator('select[name="scratch"]').selectOption("serial:scratch0");
  await form.locator('select[name="mode"]').selectOption("full");
  await shot(page, "07-backups-before");
  await form.locator('button[type="submit"]').click();
  await page.waitForURL(/\/jobs\/\d+$/);
  const backupJob = jobIdFromUrl(page);
  seen.backup_job = Number(backupJob);
  seen.backup_flash = await flashText(page);
  await shot(page, "08-backup-job-started");
  const backupState = await waitJob(page, backupJob);
  await shot(page, "09-backup-job-finished");
  if (backupState !== "done") {
    throw new Error(`backup job ${backupJob} ended ${backupState}: ${await flashText(page)}`);
  }
  const bar = await page.locator(`.progress[data-job="${backupJob}"] .pct`).first().textContent();
  if (bar.trim() !== "100%") throw new Error(`progress bar shows ${bar} when done`);
  seen.backup_summary = (await page.locator(`[data-job-summary="${backupJob}"]`).textContent()).trim();

  step("the jobs list shows it done");
  await page.click('nav a[href="/jobs"]');
  await shot(page, "10-jobs");

  step("restore the new backup to a file");
  await page.click('nav a[href="/backups"]');
  const firstRow = page.locator("table tbody tr").filter({ has: page.locator('a[href^="/backups/"]') }).first();
  const backupId = (await firstRow.locator("code").first().textContent()).trim();
  seen.backup_id = backupId;
  await shot(page, "11-backups-catalogue");
  await page.click(`a[href="/backups/${backupId}"]`);
  await page.locator("#restore-form").waitFor();
  await shot(page, "12-backup-detail");
  const restore = page.locator("#restore-form");
  await restore.locator('input[name="destination"][value="file"]').check();
  await restore.locator('input[name="name"]').fill("browser-restore.img");
  await restore.locator('button[type="submit"]').click();
  await page.waitForURL(/\/jobs\/\d+$/);
  const restoreJob = jobIdFromUrl(page);
  seen.restore_job = Number(restoreJob);
  const restoreState = await waitJob(page, restoreJob);
  await shot(page, "13-restore-job-finished");
  if (restoreState !== "done") {
    throw new Error(`restore job ${restoreJob} ended ${restoreState}: ${await flashText(page)}`);
  }
  seen.restore_summary = (await page.locator(`[data-job-summary="${restoreJob}"]`).textContent()).trim();

  step("the restored file is listed for download");
  await page.click('nav a[href="/backups"]');
  await page.locator("code", { hasText: "browser-restore.img" }).waitFor();
  await shot(page, "14-backups-with-file");
  await page.click('nav a[href="/"]');
  await shot(page, "15-dashboard-after");

  step("export the backup over NBD from the Exports page, then remove the export");
  await page.click('nav a[href="/exports"]');
  await page.locator("h2", { hasText: "NBD exports" }).waitFor();
  await page.fill('input[name="name"]', "browser-backup");
  await page.check('input[name="kind"][value="backup"]');
  await page.selectOption('select[name="backup"]', backupId);
  await page.fill('input[name="allow"]', "10.0.2.2");
  await page.click('button:has-text("Create export")');
  await page.locator("td", { hasText: "browser-backup" }).first().waitFor();
  seen.export_flash = await flashText(page);
  if (!seen.export_flash.includes("Export browser-backup created")) {
    throw new Error(`export not created: ${seen.export_flash}`);
  }
  await shot(page, "16-exports");
  const exportRow = page.locator("tr", { has: page.locator("td", { hasText: "browser-backup" }) });
  await exportRow.locator('button:has-text("Remove")').click();
  await page.waitForURL(/\/exports$/);
  seen.export_removed_flash = await flashText(page);
  if ((await page.locator("td", { hasText: "browser-backup" }).count()) !== 0) {
    throw new Error(`export still listed after Remove: ${seen.export_removed_flash}`);
  }
  if (failed) throw failed;
} catch (err) {
  failed = err;
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
if (failed) {
  console.error(`browser: FAILED: ${failed.stack || failed}`);
  process.exit(1);
}
console.log(JSON.stringify(seen));
