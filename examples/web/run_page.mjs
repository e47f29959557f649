#!/usr/bin/env node
// Open the edgecnn page in headless Chromium (playwright-core driving the system's browser), wait for the
// result, print it as one JSON line on stdout; several URLs run one after the other in one browser.
// Used by the parity tests; handy to check a page by hand too.
//
//   node run_page.mjs URL... [--screenshot FILE] [--timeout MS] [--chromium PATH]
//
// The browser is the Debian `chromium` package (found with `which chromium`, or --chromium / $CHROMIUM);
// `npx playwright install` is not needed. --screenshot is taken of each page (the last one stays).
// Exit status 0 when every page reached 'done'; 1 at the first that did not.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: { screenshot: { type: 'string' }, timeout: { type: 'string', default: '120000' }, chromium: { type: 'string' } },
});
if (positionals.length < 1) {
  console.error('usage: node run_page.mjs URL... [--screenshot FILE] [--timeout MS] [--chromium PATH]');
  process.exit(2);
}

function findChromium() {
  const given = opts.chromium ?? process.env.CHROMIUM;
  if (given) return given;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim();
    } catch { /* try the next name */ }
  }
  throw new Error('chromium not found: apt-get install chromium (or pass --chromium PATH)');
}

const profile = mkdtempSync(join(tmpdir(), 'edgecnn-chromium-')); // a fresh profile each run
let context;
let status = 1;
const logs = [];
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: findChromium(),
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    viewport: { width: 900, height: 640 },
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') logs.push(m.text()); });
  page.on('pageerror', (e) => logs.push(String(e)));
  status = 0;
  for (const url of positionals) {
    logs.length = 0;
    await page.goto(url);
    await page.waitForFunction(() => ['done', 'error'].includes(window.edgecnn?.state), null,
      { timeout: Number(opts.timeout), polling: 100 });
    const out = await page.evaluate(() => window.edgecnn);
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
    console.log(JSON.stringify({ url, ...out, console_errors: [...logs] }));
    if (out.state !== 'done') {
      console.error(`error: ${url}: ${out.error}`);
      status = 1;
      break;
    }
  }
} catch (e) {
  status = 1;
  console.error(`error: ${String(e.message).split('\n')[0]}${logs.length ? ` (page: ${logs[0]})` : ''}`);
  if (opts.screenshot && context) {
    await context.pages()[0]?.screenshot({ path: opts.screenshot, fullPage: true }).catch(() => {});
  }
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(status);
