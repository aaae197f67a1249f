// A real nginx (`stream` module, `proxy_protocol on`) in front of two `tcpkit serve --proxy-protocol --exec`
// instances. A client bound to 127.0.0.7 shows up as 127.0.0.7 on the tcpkit side (TCPREMOTEIP of the exec'd program
// and the accept line); killing one instance moves new sessions to the other. nginx runs in the foreground as a
// child of the test, every path it writes inside a temporary directory.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, eventually, exchange, freePort, startServer } from '../helpers.js';

/** The `stream` block: what docs/scaling.md shows and what the test runs (with its own addresses). */
export function nginxStream({ listen, upstreams }: { listen: string; upstreams: string[] }): string {
  return `stream {
    upstream tcpkit {
        # Passive checks (open-source nginx): a server whose connect fails is skipped for fail_timeout.
${upstreams.map((u) => `        server ${u} max_fails=1 fail_timeout=10s;`).join('\n')}
    }
    server {
        listen ${listen};
        proxy_pass tcpkit;
        # A PROXY v1 line ahead of the client's bytes: tcpkit serve --proxy-protocol reads the client from it.
        proxy_protocol on;
        proxy_connect_timeout 2s;
        # A failed connect is retried on the next server, so a dead instance costs no session.
        proxy_next_upstream on;
        proxy_next_upstream_tries 2;
        # A client's FIN is passed on (nginx >= 1.21.4), not taken as the end of the session: the client may
        # send everything, shut down its side and still read the whole reply.
        proxy_half_close on;
    }
}
`;
}

/**
 * The whole file the test gives `nginx -p DIR -c DIR/nginx.conf`: in the foreground, its pid and error log in DIR,
 * the stream module loaded when this nginx has it as a dynamic module (Debian's libnginx-mod-stream).
 */
export function nginxConfig({ dir, module, listen, upstreams }: { dir: string; module?: string; listen: string; upstreams: string[] }): string {
  return `# Run in the foreground by the test, which owns the process; nothing is written outside ${dir}.
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
${module ? `load_module ${module};\n` : ''}
events {
    worker_connections 64;
}

${nginxStream({ listen, upstreams })}`;
}

const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'].find((p) => fs.existsSync(p));
/** Is `stream` compiled into this nginx (`--with-stream`), or must it be loaded (`--with-stream=dynamic`)? */
const builtIn = nginx ? /--with-stream(\s|$)/.test(spawnSync(nginx, ['-V'], { encoding: 'utf8' }).stderr) : false;
const streamModule = builtIn
  ? undefined
  : ['/usr/lib/nginx/modules/ngx_stream_module.so', '/usr/lib64/nginx/modules/ngx_stream_module.so', '/usr/local/nginx/modules/ngx_stream_module.so'].find((p) =>
      fs.existsSync(p),
    );
const skip = !nginx
  ? 'nginx is not installed (Debian packages nginx and libnginx-mod-stream; .ci/run installs them)'
  : !builtIn && !streamModule
    ? `${nginx} has no stream module (Debian package libnginx-mod-stream; .ci/run installs it)`
    : false;


describe('the documented nginx configuration', () => {
  it('docs/scaling.md shows the stream block the test runs', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'scaling.md'), 'utf8');
    const shown = nginxStream({ listen: '9877', upstreams: ['10.0.0.11:9877', '10.0.0.12:9877'] });
    assert.ok(doc.includes('```nginx\n' + shown + '```'), `docs/scaling.md has, verbatim:\n${shown}`);
  });
});

interface Server {
  port: number;
  proc: ChildProcess;
  exited: Promise<unknown>;
  log(): string;
  stop(): Promise<unknown>;
}

describe('behind a real nginx (stream, proxy_protocol on)', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpkit-nginx-'));
  let a: Server;
  let b: Server;
  let ngx: ChildProcess | undefined;
  let ngxOut = '';
  let frontend = 0;
  // The program prints the UCSPI variables it got, then echoes.
  const service = ['--exec', '--', '/bin/sh', '-c', 'printf "%s %s\\n" "$TCPREMOTEIP" "$TCPREMOTEPORT"; exec cat'];
  const errorLog = () => {
    try {
      return fs.readFileSync(path.join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };

  before(async () => {
    a = (await startServer(['--proxy-protocol', '--max-conns', '20', ...service])) as Server;
    b = (await startServer(['--proxy-protocol', '--max-conns', '20', ...service])) as Server;
    frontend = await freePort();
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, nginxConfig({ dir, module: streamModule, listen: `127.0.0.1:${frontend}`, upstreams: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`] }));
    // -e: the error log nginx opens before it has read the configuration (else its compiled-in /var/log path).
    const args = ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')];
    const check = spawnSync(nginx!, ['-t', ...args], { encoding: 'utf8' });
    assert.equal(check.status, 0, `nginx -t: ${check.stderr}`);
    ngx = spawn(nginx!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    ngx.stdout!.on('data', (c) => (ngxOut += c));
    ngx.stderr!.on('data', (c) => (ngxOut += c));
    await eventually(
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port: frontend }, () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        }),
      { timeoutMs: 10_000, message: `nginx listening on ${frontend}; its output:\n${ngxOut}\n${errorLog()}` },
    );
  });

  after(async () => {
    if (ngx && ngx.exitCode === null && ngx.signalCode === null) {
      const exited = new Promise((resolve) => ngx!.once('exit', resolve));
      // SIGTERM: nginx's fast shutdown; the master stops its worker and exits.
      ngx.kill('SIGTERM');
      const timer = setTimeout(() => ngx!.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    await a?.stop();
    await b?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One session through nginx from 127.0.0.7: the client's port and the reply. */
  async function session(text: string): Promise<{ port: number; reply: string }> {
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port: frontend, localAddress: '127.0.0.7', allowHalfOpen: true }, () => {
        c.off('error', reject);
        resolve(c);
      });
      c.once('error', reject);
    });
    const port = s.localPort!;
    const reply = ((await exchange(s, Buffer.from(text))) as Buffer).toString();
    return { port, reply };
  }

  // nginx's header names the client and the address it accepted on (its listen address).
  const acceptedFrom = (server: Server, port: number) =>
    new RegExp(`^accept 127\\.0\\.0\\.7:${port} -> 127\\.0\\.0\\.1:${frontend} IPv4 pid \\d+ count \\d+/20 id \\d+ via 127\\.0\\.0\\.1:\\d+$`, 'm').test(server.log());

  it('the client at 127.0.0.7 is TCPREMOTEIP and the logged peer on both instances, every byte echoed', async () => {
    const seen = { a: 0, b: 0 };
    // nginx's round robin alternates; a few sessions reach both instances (bounded).
    for (let i = 0; i < 12 && (seen.a < 2 || seen.b < 2); i++) {
      const text = `session ${i} ${'x'.repeat(1000 * i)}\n`;
      const { port, reply } = await session(text);
      assert.equal(reply, `127.0.0.7 ${port}\n${text}`, 'TCPREMOTEIP/TCPREMOTEPORT are the client behind nginx');
      await eventually(() => acceptedFrom(a, port) || acceptedFrom(b, port), { timeoutMs: 5000, message: `accept of 127.0.0.7:${port}` });
      if (acceptedFrom(a, port)) seen.a++;
      else seen.b++;
    }
    assert.ok(seen.a >= 2 && seen.b >= 2, `both instances served (a ${seen.a}, b ${seen.b})`);
    assert.doesNotMatch(a.log() + b.log(), /^refuse /m);
  });

  it('killing one instance moves new sessions to the other', async () => {
    const before = (b.log().match(/^accept 127\.0\.0\.7:/gm) ?? []).length;
    a.proc.kill('SIGKILL');
    await a.exited;
    // The first session after the kill finds a refused connect and is retried on b (proxy_next_upstream); after
    // that a is skipped for fail_timeout.
    for (let i = 0; i < 6; i++) {
      const text = `after the kill ${i}\n`;
      const { port, reply } = await session(text);
      assert.equal(reply, `127.0.0.7 ${port}\n${text}`);
      await eventually(() => acceptedFrom(b, port), { timeoutMs: 5000, message: `instance b accepted 127.0.0.7:${port}` });
    }
    assert.equal((b.log().match(/^accept 127\.0\.0\.7:/gm) ?? []).length, before + 6);
    // nginx noticed: its error log names the refused connect to the killed instance.
    assert.match(errorLog(), new RegExp(`connect\\(\\) failed \\(111: Connection refused\\) while connecting to upstream.*127\\.0\\.0\\.1:${a.port}`));
  });
});
