// The live dashboard in a real browser: headless Chromium (Debian's `chromium`)
// driven by playwright-core opens the admin endpoint's page, sees three clients'
// connections appear, sees one go when its client closes, and saves the screenshot
// the README shows (docs/dashboard.png).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import type net from 'node:net';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { childrenOf, connectTo, eventually, readBytes, ROOT, startServer, waitClose, type StartedServer, errnoOf } from '../helpers.js';

const CHROMIUM = process.env.TCPKIT_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = path.join(ROOT, 'docs', 'dashboard.png');

let playwright: typeof import('playwright-core') | undefined;
let skip: string | false = false;
if (!fs.existsSync(CHROMIUM)) {
  skip = `${CHROMIUM} not found: install the Debian package chromium (apt-get install chromium; .ci/run does)`;
} else {
  try {
    playwright = await import('playwright-core');
  } catch (err) {
    skip = `playwright-core is not installed (npm ci installs it): ${errnoOf(err).message}`;
  }
}

let server: StartedServer;
let context: BrowserContext | undefined;
let userDataDir: string | undefined;
const clients: net.Socket[] = [];

before(async () => {
  if (skip || !playwright) return;
  server = await startServer(['--admin', '127.0.0.1:0']);
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-chromium-'));
  context = await playwright.chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1180, height: 760 },
    timeout: 60_000,
  });
});

after(async () => {
  for (const c of clients) c.destroy();
  await context?.close();
  if (server) {
    const { code } = await server.stop('SIGTERM');
    assert.equal(code, 0);
  }
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

test('the dashboard shows three connections live, then one going away', { skip }, async () => {
  const [, url = ''] = await server.waitFor(/admin (http:\/\/\S+\/)/);
  assert.ok(context, 'the browser started');
  const page = context.pages()[0] ?? (await context.newPage());
  try {
    await scenario(page, url);
  } catch (err) {
    // What the page showed when it failed, for whoever reads the CI log.
    const e = errnoOf(err);
    e.message += `\n--- dashboard text:\n${await page.locator('body').innerText().catch((x: unknown) => errnoOf(x).message)}`;
    throw e;
  }
});

async function scenario(page: Page, url: string): Promise<void> {
  const failures: string[] = [];
  page.on('pageerror', (err) => failures.push(err.message));
  page.on('requestfailed', (req) => {
    // The event stream is cut when the test ends; anything else failing is a defect (no CDN, no other host).
    if (!req.url().endsWith('/events')) failures.push(`${req.url()} ${req.failure()?.errorText}`);
  });
  // A connection served and gone before the page opens: its lines are in the Events panel's backlog.
  const early = await connectTo(server.port);
  const earlyKey = `127.0.0.1:${early.localPort}`;
  early.write('early\n');
  assert.equal((await readBytes(early, 6)).toString(), 'early\n');
  early.end();
  await waitClose(early);
  early.destroy();
  await server.waitFor(/^end pid \d+ exitcode 0 /m);

  // Without its event stream the page still shows the server at once (it used to say "connecting…" until the first event).
  const still = await page.context().newPage();
  await still.route('**/events*', (route) => route.abort());
  await still.goto(url);
  await still.waitForSelector('#server .sock.listen[data-state="LISTEN"]', { timeout: 5_000 });
  assert.match((await still.locator('#summary').textContent()) ?? '', /^pid \d+ · 127\.0\.0\.1:\d+ · model fork · service echo/);
  await still.close();

  await page.goto(url);
  await page.waitForSelector('#live.on', { timeout: 15_000 });
  await page.waitForSelector('#server .sock.listen[data-state="LISTEN"]', { timeout: 20_000 });
  // The backlog: the early connection's accept and end, sent as the stream opened, with nothing new since.
  await page.waitForFunction((key: string) => new RegExp(`accept ${key.replace(/\./g, '\\.')} -> `).test(document.getElementById('log')?.textContent ?? ''), earlyKey, {
    timeout: 5_000,
  });

  for (let i = 0; i < 3; i++) {
    const c = await connectTo(server.port);
    clients.push(c);
    c.write(`client ${i}\n`);
    assert.equal((await readBytes(c, `client ${i}\n`.length)).toString(), `client ${i}\n`);
  }
  // Each child, drawn inside the server with the connection it serves, within a second or so of happening.
  const established = '#server .sock.conn[data-state="ESTABLISHED"]';
  await page.waitForFunction((sel: string) => document.querySelectorAll(sel).length === 3, established, { timeout: 20_000 });
  assert.equal(await page.locator('#server .proc[data-role="child"]').count(), 3);
  // Each child serves its one connection: served 1 (it said 0).
  const childText = await page.locator('#server .proc[data-role="child"] .head').allTextContents();
  for (const t of childText) assert.match(t, /· served 1\b/, t);
  assert.equal(await page.locator('#counter-accepted .n').textContent(), '4', 'the early connection and these three');
  assert.equal(await page.locator('#counter-active .n').textContent(), '3 / 40');
  const remotes = await page.locator(established).evaluateAll((els: HTMLElement[]) => els.map((e) => e.dataset.remote).sort());
  const expected = clients.map((c) => `127.0.0.1:${c.localPort}`).sort();
  assert.deepEqual(remotes, expected);
  // The client side of each connection, from /proc, with a wire drawn to it.
  await page.waitForFunction(() => document.querySelectorAll('#wires path').length === 3, null, { timeout: 20_000 });

  // The first client ends: its child exits, the connection leaves the server, the client's side stays in TIME_WAIT.
  const gone = clients.shift();
  assert.ok(gone);
  const goneKey = `127.0.0.1:${gone.localPort}`;
  gone.end();
  assert.equal(await waitClose(gone), 'end');
  gone.destroy();
  await page.waitForFunction((sel: string) => document.querySelectorAll(sel).length === 2, established, { timeout: 20_000 });
  assert.equal(await page.locator(`#server .sock.conn[data-remote="${goneKey}"]`).count(), 0);
  await page.waitForSelector(`#clients .client[data-client="${goneKey}"][data-state="TIME_WAIT"]`, { timeout: 20_000 });
  assert.equal(await page.locator('#server .proc[data-role="child"]').count(), 2);
  await page.waitForFunction(() => /\bend pid \d+ exitcode 0\b/.test(document.getElementById('log')?.textContent ?? ''), null, {
    timeout: 20_000,
  });

  fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  assert.ok(fs.statSync(SCREENSHOT).size > 10_000, 'screenshot written');
  assert.deepEqual(failures, []);

  for (const c of clients.splice(0)) {
    c.end();
    await waitClose(c);
    c.destroy();
  }
  await eventually(() => childrenOf(server.pid).length === 0, { message: 'every child reaped' });
}
