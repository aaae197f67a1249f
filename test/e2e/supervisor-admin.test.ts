// `serve --config FILE --admin HOST:PORT` (issue 12): the status code consumes a
// StatusSource that the Supervisor provides as well as a Server, so one admin endpoint
// shows every service: /status lists both, /metrics carries both (a `binding` label
// each), and the dashboard, in headless Chromium, shows both.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startConfigServer as startConfigServerJs, tempDir } from '../exec-helpers.js';
import { connectTo, exchange, readBytes } from '../helpers.js';

type ConfigServer = Awaited<ReturnType<typeof startConfigServerJs>>;
/** exec-helpers.js's startConfigServer, typed with the `args` its default (`[]`) hides. */
const startConfigServer = startConfigServerJs as (file: string, count: number, options?: { args?: string[] }) => Promise<ConfigServer>;

const CHROMIUM = process.env.TCPKIT_CHROMIUM ?? '/usr/bin/chromium';

type Playwright = typeof import('playwright-core');
let playwright: Playwright | undefined;
let skipBrowser: string | false = false;
if (!fs.existsSync(CHROMIUM)) {
  skipBrowser = `${CHROMIUM} not found: install the Debian package chromium`;
} else {
  try {
    playwright = await import('playwright-core');
  } catch (err) {
    skipBrowser = `playwright-core is not installed: ${(err as Error).message}`;
  }
}

const CONFIG = `services:
  first:
    listen: 127.0.0.1:0
    internal: echo
    model: event
  second:
    listen: 127.0.0.1:0
    internal: echo
    model: fork
`;

describe('serve --config with --admin', () => {
  let tmp: { dir: string; cleanup: () => void };
  let server: ConfigServer;
  let url: string;
  const held: Array<import('node:net').Socket> = [];

  before(async () => {
    tmp = tempDir();
    const file = path.join(tmp.dir, 'tcpkit.yaml');
    fs.writeFileSync(file, CONFIG);
    server = await startConfigServer(file, 2, { args: ['--admin', '127.0.0.1:0'] });
    url = (await server.waitFor(/admin (http:\/\/\S+)\//))[1]!;
    // One open connection on each service, so each shows something of its own.
    for (const key of ['first 127.0.0.1:0', 'second 127.0.0.1:0']) {
      const s = await connectTo(server.ports[key]);
      s.write('x');
      await readBytes(s, 1);
      held.push(s);
    }
  });

  after(async () => {
    for (const s of held) s.destroy();
    if (server) assert.deepEqual(await server.stop(), { code: 0, signal: null });
    tmp?.cleanup();
  });

  it('/status lists both services, each with its own address and connection', async () => {
    const res = await fetch(`${url}/status`);
    assert.equal(res.status, 200);
    const snap = (await res.json()) as { services: Record<string, { local: { port: number }; active: number; model: string }>; ports: number[] };
    assert.deepEqual(Object.keys(snap.services).sort(), ['first 127.0.0.1:0', 'second 127.0.0.1:0']);
    assert.equal(snap.services['first 127.0.0.1:0']!.local.port, server.ports['first 127.0.0.1:0']);
    assert.equal(snap.services['second 127.0.0.1:0']!.local.port, server.ports['second 127.0.0.1:0']);
    assert.equal(snap.services['first 127.0.0.1:0']!.model, 'event');
    assert.equal(snap.services['second 127.0.0.1:0']!.active, 1);
    assert.deepEqual(snap.ports, [server.ports['first 127.0.0.1:0'], server.ports['second 127.0.0.1:0']].sort((a, b) => a - b));
  });

  it('/metrics carries both services, told apart by a binding label', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    assert.match(text, /^tcpkit_connections_active\{binding="first 127\.0\.0\.1:0"\} 1$/m);
    assert.match(text, /^tcpkit_connections_active\{binding="second 127\.0\.0\.1:0"\} 1$/m);
    assert.match(text, /^tcpkit_connections_accepted_total\{binding="first 127\.0\.0\.1:0"\} 1$/m);
    assert.match(text, /^tcpkit_server_info\{model="fork",service="echo",state="running",binding="second 127\.0\.0\.1:0"\} 1$/m);
    // One HELP and TYPE per name: a valid exposition, not two registries pasted together.
    assert.equal(text.match(/^# TYPE tcpkit_connections_active /gm)?.length, 1);
  });

  it('the dashboard shows both services in Chromium', { skip: skipBrowser }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-chromium-'));
    const context = await playwright!.chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 60_000,
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      await page.goto(`${url}/`);
      try {
        await shows(page);
      } catch (err) {
        const text = await page.locator('body').innerText().catch((e: Error) => e.message);
        throw new Error(`${(err as Error).message}\n--- dashboard text:\n${text}`, { cause: err });
      }
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  async function shows(page: import('playwright-core').Page) {
    {
      await page.waitForSelector('#live.on', { timeout: 20_000 });
      for (const label of ['first 127.0.0.1:0', 'second 127.0.0.1:0']) {
        await page.waitForSelector(`#services .service[data-service="${label}"]`, { timeout: 20_000 });
      }
      await page.waitForFunction(() => document.querySelectorAll('#server .sock.listen[data-state="LISTEN"]').length >= 2, null, { timeout: 20_000 });
      // Each service's client is drawn on the server side (ids are per service, so match by peer).
      const remotes = held.map((c) => `127.0.0.1:${c.localPort}`);
      await page.waitForFunction(
        (want) => want.every((r) => document.querySelector(`#server .sock.conn[data-state="ESTABLISHED"][data-remote="${r}"]`)),
        remotes,
        { timeout: 20_000 },
      );
      for (const r of remotes) await page.waitForSelector(`#clients .client[data-client="${r}"]`, { timeout: 20_000 });
      assert.equal(await page.locator('#counter-active .n').textContent(), '2 / 80');
      assert.match((await page.locator('#summary').textContent()) ?? '', /2 services/);
    }
  }

  it('the services keep serving while the endpoint is watched', async () => {
    const s = await connectTo(server.ports['first 127.0.0.1:0']);
    assert.equal((await exchange(s, Buffer.from('still here'))).toString(), 'still here');
  });
});
