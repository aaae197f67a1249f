// docs/grafana-dashboard.json queries only what /metrics exports: every metric name in its PromQL (panels and
// template variables) is one a running server's /metrics has, and every label it groups or filters by is one those
// metrics carry (or one Prometheus adds at scrape: instance, job).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, connectTo, echoOnce, readBytes, startServer } from '../helpers.js';

interface Dashboard {
  panels: { title: string; type: string; targets?: { expr: string }[] }[];
  templating: { list: { name: string; type: string; definition?: string }[] };
}

/** What one /metrics page says: each metric's TYPE, and the labels seen on each metric's samples. */
interface Exposition {
  types: Map<string, string>;
  labels: Map<string, Set<string>>;
}

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (!sample) continue;
    const set = labels.get(sample[1]!) ?? new Set<string>();
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) set.add(m[1]!);
    labels.set(sample[1]!, set);
  }
  return { types, labels };
}

/** The PromQL of the dashboard, each with where it comes from. */
function queries(d: Dashboard): { where: string; expr: string }[] {
  const out = d.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })));
  for (const v of d.templating.list) if (v.type === 'query' && v.definition) out.push({ where: `variable $${v.name}`, expr: v.definition });
  return out;
}

/** Series names an expression selects: every tcpkit_* identifier (label names never start so). */
const seriesIn = (expr: string) => [...new Set([...expr.matchAll(/\btcpkit_[a-zA-Z0-9_:]+/g)].map((m) => m[0]))];

/** The metric a series name belongs to: histogram and summary series carry _bucket/_sum/_count suffixes. */
function metricOf(series: string, types: Map<string, string>): string {
  const m = /^(.*)_(bucket|sum|count)$/.exec(series);
  if (m && ['histogram', 'summary'].includes(types.get(m[1]!) ?? '') && (m[2] !== 'bucket' || types.get(m[1]!) === 'histogram')) return m[1]!;
  return series;
}

/** Labels an expression groups by (`by (...)`, `without (...)`, `label_values(m, l)`) or matches (`{l=~"..."}`). */
function labelsIn(expr: string): string[] {
  const out = new Set<string>();
  for (const m of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) for (const l of m[1]!.split(',')) if (l.trim()) out.add(l.trim());
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) for (const l of m[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) out.add(l[1]!);
  for (const m of expr.matchAll(/label_values\(\s*[^,]+,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)/g)) out.add(m[1]!);
  return [...out];
}

/** Labels Prometheus adds to every scraped series (and `le`, every histogram bucket's). */
const SCRAPE_LABELS = new Set(['instance', 'job']);

const dashboard = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs', 'grafana-dashboard.json'), 'utf8')) as Dashboard;

describe('docs/grafana-dashboard.json against /metrics', () => {
  type Started = Awaited<ReturnType<typeof startServer>>;
  const servers: Started[] = [];
  const pages: Exposition[] = [];

  /** Fetch /metrics of a server started with --admin 127.0.0.1:0. */
  async function scrape(s: Started): Promise<Exposition> {
    const [, url] = (await s.waitFor(/admin (http:\/\/\S+)\/ pid \d+/)) as RegExpExecArray;
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    return parseExposition(await res.text());
  }

  before(async () => {
    // fork (children reaped, a per-source refusal) and prefork (workers, connections served per worker): between
    // them every labelled series the dashboard groups by has samples.
    const fork = await startServer(['--admin', '127.0.0.1:0', '--per-source', '2']);
    servers.push(fork);
    const held = [await connectTo(fork.port), await connectTo(fork.port)];
    for (const s of held) {
      s.write('x');
      await readBytes(s, 1);
    }
    // A third connection from 127.0.0.1 while two are open: refused, reason per-source.
    const third = await connectTo(fork.port);
    // Opened half-open by the helper: the server's FIN (or reset) ends it; bounded all the same.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 10_000);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      third.on('error', done);
      third.on('end', done);
      third.on('close', done);
      third.resume();
    });
    third.destroy();
    for (const s of held) s.destroy();
    await fork.waitFor(/^refuse 127\.0\.0\.1:\d+ .*reason per-source/m);
    await fork.waitFor(/^end pid \d+ exitcode \d+ count 0\//m);
    pages.push(await scrape(fork));

    const prefork = await startServer(['--admin', '127.0.0.1:0', '--model', 'prefork', '--workers', '2']);
    servers.push(prefork);
    for (let i = 0; i < 4; i++) assert.equal((await echoOnce(prefork.port, Buffer.from(`c${i}`))).toString(), `c${i}`);
    pages.push(await scrape(prefork));
  });

  after(async () => {
    for (const s of servers) await s.stop();
  });

  it('the dashboard has the panels the operators asked for', () => {
    const titles = dashboard.panels.map((p) => p.title);
    for (const t of ['Connections/s', 'Active connections', 'Refused by reason', 'Children spawned / reaped / crashed', 'Connections served per worker']) {
      assert.ok(titles.includes(t), `panel "${t}" in ${titles.join(', ')}`);
    }
    for (const { where, expr } of queries(dashboard)) assert.ok(seriesIn(expr).length > 0, `${where} queries a tcpkit metric: ${expr}`);
  });

  it('every metric the dashboard queries is one /metrics exports', () => {
    const exported = new Map<string, string>();
    for (const p of pages) for (const [name, type] of p.types) exported.set(name, type);
    const queried = new Set<string>();
    for (const { where, expr } of queries(dashboard)) {
      for (const series of seriesIn(expr)) {
        const metric = metricOf(series, exported);
        queried.add(metric);
        assert.ok(exported.has(metric), `${where} queries ${series}, which /metrics does not export (it has: ${[...exported.keys()].join(', ')})`);
        // Both servers export the same set: the dashboard works whatever the model.
        for (const p of pages) assert.ok(p.types.has(metric), `${metric} exported by every server`);
      }
    }
    for (const m of ['tcpkit_connections_accepted_total', 'tcpkit_connections_active', 'tcpkit_connections_refused_total', 'tcpkit_children_reaped_total', 'tcpkit_model_processes', 'tcpkit_model_connections_served']) {
      assert.ok(queried.has(m), `the dashboard queries ${m}`);
    }
  });

  it('every label the dashboard groups or filters by is on the metrics it queries', (t) => {
    for (const { where, expr } of queries(dashboard)) {
      const seen = new Set<string>();
      let samples = 0;
      for (const series of seriesIn(expr)) {
        for (const p of pages) {
          const labels = p.labels.get(series);
          if (!labels) continue;
          samples++;
          for (const l of labels) seen.add(l);
        }
      }
      // A labelled counter has no sample until it first counts (errors, kills in a quiet run): nothing to compare.
      if (samples === 0) {
        t.diagnostic(`${where}: no samples yet of ${seriesIn(expr).join(', ')}; labels not checked`);
        continue;
      }
      for (const label of labelsIn(expr)) {
        assert.ok(SCRAPE_LABELS.has(label) || seen.has(label), `${where} uses label "${label}", which no sample of ${seriesIn(expr).join(', ')} carries: ${expr}`);
      }
    }
  });
});
