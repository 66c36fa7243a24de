// SPDX-License-Identifier: MIT
// The dashboard in a real browser: Debian's chromium, headless, driven by
// playwright-core (test_web_browser.py starts the daemon and the gateway,
// then this). Prints READY when the page is up, so the test makes an
// escalation happen; then waits for it in the live feed, without a reload.
// Screenshots go to LX_SHOTS. Exit 0 when every check held.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const url = process.env.LX_URL;
const shots = process.env.LX_SHOTS;
const expect = JSON.parse(process.env.LX_EXPECT);
const fail = (msg) => { console.error('FAIL: ' + msg); process.exit(1); };
// Every wait is for a condition, with a generous bound: the test's daemon
// runs a fast clock on a shared machine, so nothing is timed by sleeping.
const WAIT = 30000;
// Polls check() (async; returns null when satisfied, else what it saw)
// until it holds or WAIT passes, then fails with what it last saw.
async function until(page, what, check, timeout = WAIT) {
  const end = Date.now() + timeout;
  let seen;
  for (;;) {
    seen = await check();
    if (seen === null) return;
    if (Date.now() > end) fail(`${what}: ${seen}`);
    await page.waitForTimeout(100);
  }
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lx-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  httpCredentials: { username: process.env.LX_USER, password: process.env.LX_PASS },
  viewport: { width: 1280, height: 900 },
});
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  // The tree, with the configured Chinese names and the counts.
  for (const [p, counts] of Object.entries(expect.units)) {
    const btn = page.locator(`#tree button[data-path="${p}"]`);
    await btn.waitFor({ timeout: WAIT });
    // Open is fixed by what the test filed; due soon and overdue move with
    // the test's fast clock, so only their form is checked.
    await until(page, `unit ${p} (${counts.name}, ${counts.open} open)`, async () => {
      const text = (await btn.innerText()).replace(/\s+/g, ' ');
      const m = text.match(/(\d+) \/ (\d+) \/ (\d+)/);
      return text.includes(counts.name) && m && Number(m[1]) === counts.open ? null : `shows "${text}"`;
    });
  }
  await page.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });
  // Open a unit: its open appeals with deadlines.
  await page.locator(`#tree button[data-path="${expect.open_unit}"]`).click();
  for (const id of expect.appeals) {
    await page.locator('#appeals tbody td', { hasText: id }).first().waitFor({ timeout: WAIT });
  }
  await until(page, 'the first appeal\'s deadline cell', async () => {
    const deadline = await page.locator('#appeals tbody tr').first().locator('td').nth(3).innerText();
    return /^\d{4}-\d\d-\d\d \d\d:\d\d$/.test(deadline) ? null : `shows "${deadline}"`;
  });
  // The ranking: a table, or the clear note that it is not enabled.
  await page.locator('#ranking-lists, #ranking-off').first().waitFor({ timeout: WAIT });
  // The chart: its last month is the daemon's (the test clock's), whatever
  // the machine's date, with a dot for each rate of that month.
  const last = expect.chart_month;
  await page.locator(`#chart-svg circle[data-period="${last}"]`).first().waitFor({ timeout: WAIT });
  const dots = await page.locator(`#chart-svg circle[data-period="${last}"]`).count();
  if (dots !== 2) fail(`the chart has ${dots} dots for ${last}, expected the two rates`);
  const rankingText = await page.locator('#ranking').innerText();
  console.log('ranking: ' + rankingText.split('\n')[0]);
  // The live feed: an escalation made now appears without a reload.
  await page.evaluate(() => { window.lxMarker = 'same page'; });
  await page.locator('#feed-state', { hasText: '已连接' }).waitFor({ timeout: WAIT });
  console.log('READY');
  const item = page.locator('#feed li')
    .filter({ has: page.locator('.kind.escalated'), hasText: expect.escalated }).first();
  await item.waitFor({ timeout: 4 * WAIT }); // a working day, perhaps over a weekend, of the fast clock
  if (await page.evaluate(() => window.lxMarker) !== 'same page') fail('the page was reloaded');
  await page.screenshot({ path: path.join(shots, 'dashboard-live.png'), fullPage: true });
  // A phone screen: one column, nothing wider than the viewport.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForFunction(() => window.innerWidth === 390, null, { timeout: WAIT });
  await until(page, 'the page fits a phone screen', async () => {
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    return overflow <= 2 ? null : `${overflow}px wider`;
  });
  await page.screenshot({ path: path.join(shots, 'dashboard-phone.png'), fullPage: true });
  if (errors.length) fail('page errors: ' + errors.join('; '));
  console.log('OK');
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
