// The option table (src/options.ts): every numeric serve option is checked the same way
// by the library, the `serve` flags and config files, and nothing reaches a timer beyond 2^31-1 ms.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError, InvalidOptionError } from '../../src/errors.js';
import { choicesOf, configSchemaProperties, defaultText, MAX_SECONDS, MAX_TIMER_MS, NUMERIC_OPTIONS, numericRule, OPTIONS, optionHelp, parseArgsOptions, parseFlag, type NumericOptionName, type OptionSpec } from '../../src/options.js';
import { parseServeArgs, serveHelp } from '../../src/cli/serve.js';
import { createServer, type ServerOptions } from '../../src/server.js';
import { parseConfig } from '../../src/super/config.js';

/** The numeric options createServer takes (maxReply is the bench service's, given through --max-reply). */
const names = (Object.keys(NUMERIC_OPTIONS) as NumericOptionName[]).filter((n) => NUMERIC_OPTIONS[n].scope === 'server') as Exclude<NumericOptionName, 'maxReply'>[];
/** Where a numeric field sits in a config file's service: the table's own path. */
const CONFIG_PATH: Partial<Record<NumericOptionName, string>> = Object.fromEntries(
  names.filter((n) => (NUMERIC_OPTIONS[n] as { config?: string }).config !== undefined).map((n) => [n, (NUMERIC_OPTIONS[n] as { config?: string }).config!]),
);

/** Values around every boundary that matters, plus anything at all. */
function values(name: (typeof names)[number]): fc.Arbitrary<number> {
  const o = NUMERIC_OPTIONS[name];
  return fc.oneof(
    fc.constantFrom(o.min, o.max, o.min - 1, o.max + 1, o.max + 0.5, 2 ** 31 / 1000, 2 ** 31, 2592000, 1e308, -0.5, 0.25, NaN, Infinity),
    fc.integer({ min: -10, max: o.max + 10 }),
    fc.double({ min: -1, max: o.max * 2, noNaN: true }),
    fc.double(),
  );
}

/** Library options for one field (proxyTimeout and proxyV2Limit only matter with proxyProtocol). */
function libraryOptions(name: (typeof names)[number], value: number): ServerOptions {
  const base: ServerOptions = name === 'proxyTimeout' || name === 'proxyV2Limit' ? { proxyProtocol: true } : {};
  // The TLS numbers are kept only with TLS on (files are read by listen(), not here).
  if (name.startsWith('tls')) Object.assign(base, { tlsCert: 'cert.pem', tlsKey: 'key.pem' });
  // An option of some models only (workers, maxConnsPerWorker) is given under one of them.
  const models = (OPTIONS[name] as { models?: readonly string[] }).models;
  if (models !== undefined) base.model = models[0] as ServerOptions['model'];
  return { ...base, [name]: value };
}

/** The resolved value createServer keeps for a field, in the option's own unit. */
function resolved(name: (typeof names)[number], options: ReturnType<typeof createServer>['options']): number | undefined {
  switch (name) {
    case 'idleTimeout':
      return options.limits.idleMs / 1000;
    case 'timeLimit':
      return options.limits.maxMs / 1000;
    case 'proxyTimeout':
      return options.proxy!.timeoutMs! / 1000;
    case 'proxyV2Limit':
      return options.proxy!.v2Limit;
    case 'tlsTicketRotate':
      return options.tls!.ticketRotateMs / 1000;
    case 'tlsHandshakeTimeout':
      return options.tls!.handshakeMs / 1000;
    case 'tlsMaxPending':
    case 'tlsMaxPendingPerSource':
      return options.tls![name === 'tlsMaxPending' ? 'maxPending' : 'maxPendingPerSource'];
    case 'workers':
    case 'spare':
    case 'maxConnsPerWorker':
      return options.modelOptions[name];
    default:
      return options[name];
  }
}

function accepts(name: NumericOptionName, v: number): boolean {
  const o = NUMERIC_OPTIONS[name];
  return Number.isFinite(v) && (o.kind === 'seconds' || Number.isInteger(v)) && ('aboveMin' in o && o.aboveMin ? v > o.min : v >= o.min) && v <= o.max;
}

describe('option table', () => {
  it('every duration fits a timer: maximum seconds × 1000 <= 2^31-1 ms', () => {
    for (const name of names) {
      const o = NUMERIC_OPTIONS[name];
      if (o.kind === 'seconds') assert.ok(o.max * 1000 <= MAX_TIMER_MS, name);
      assert.ok(Number.isFinite(o.max), `${name} has a documented maximum`);
    }
    assert.equal(MAX_SECONDS, 2147483);
  });

  for (const name of names) {
    it(`library: ${name} is refused naming it, or kept as given within its maximum`, () => {
      fc.assert(
        fc.property(values(name), (v) => {
          let server;
          try {
            server = createServer(libraryOptions(name, v));
          } catch (err) {
            assert.ok(err instanceof InvalidOptionError, String(err));
            assert.equal(err.option, name);
            assert.equal(err.message, `${name}: ${numericRule(name)}, got ${JSON.stringify(v)}`);
            assert.ok(!accepts(name, v), `refused an acceptable ${v}`);
            return;
          }
          assert.ok(accepts(name, v), `accepted ${v}`);
          const got = resolved(name, server.options)!;
          // Seconds become whole milliseconds (at most 1 ms off, never 0 for a positive value); never more than a timer holds.
          if (v > 0) assert.ok(got > 0, `${name} ${v} became 0 (no limit)`);
          assert.ok(Math.abs(got - v) <= 0.001, `${name} ${v} became ${got}`);
          if (NUMERIC_OPTIONS[name].kind === 'seconds') assert.ok(got * 1000 <= MAX_TIMER_MS);
        }),
        { numRuns: 200 },
      );
    });

    const flag = (NUMERIC_OPTIONS[name] as { flag?: string }).flag;
    if (flag !== undefined) {
      it(`CLI: --${flag} is refused naming it, or equal to the value written`, () => {
        const text = fc.oneof(
          values(name).map((v) => String(v)),
          fc.string({ maxLength: 12 }),
          fc.stringMatching(/^[0-9]{1,12}(\.[0-9]{1,4})?$/),
        );
        fc.assert(
          fc.property(text, (t) => {
            let v: number | undefined;
            try {
              v = parseFlag(name, t);
            } catch (err) {
              assert.ok(err instanceof InvalidOptionError, String(err));
              assert.equal(err.message, `--${flag}: ${numericRule(name)}, got ${JSON.stringify(t)}`);
              assert.ok(!/^\d+(\.\d+)?$/.test(t) || !accepts(name, Number(t)) || (NUMERIC_OPTIONS[name].kind === 'integer' && t.includes('.')));
              return;
            }
            assert.equal(v, Number(t));
            assert.ok(accepts(name, v!));
            // What the CLI accepts, the library accepts unchanged.
            assert.ok(Math.abs(resolved(name, createServer(libraryOptions(name, v!)).options)! - v!) <= 0.001);
          }),
          { numRuns: 200 },
        );
      });
    }

    const at = CONFIG_PATH[name];
    if (at !== undefined) {
      it(`config: services.s.${at} is refused naming it, or equal to the value written`, () => {
        fc.assert(
          fc.property(values(name), (v) => {
            // YAML has .inf and .nan; JSON.stringify would write null.
            const yaml = Number.isNaN(v) ? '.nan' : v === Infinity ? '.inf' : v === -Infinity ? '-.inf' : String(v);
            const [group, key] = at.split('.');
            const field = key !== undefined ? `    ${group}: { ${key}: ${yaml} }\n` : `    ${at}: ${yaml}\n`;
            const text = `services:\n  s:\n    listen: 127.0.0.1:0\n    internal: echo\n${field}`;
            let options: ServerOptions;
            try {
              options = parseConfig(text, 'f.yaml').services[0]!.options;
            } catch (err) {
              assert.ok(err instanceof ConfigError, String(err));
              assert.ok(err.message.startsWith(`f.yaml: services.s.${at}: ${numericRule(name)}, got `), err.message);
              assert.ok(!accepts(name, v), `refused an acceptable ${v}: ${err.message}`);
              return;
            }
            assert.ok(accepts(name, v), `accepted ${v}`);
            assert.ok(options[name] === v, `${options[name]} !== ${v}`);
            assert.ok(Math.abs(resolved(name, createServer({ ...options, ...libraryOptions(name, v) }).options)! - v) <= 0.001);
          }),
          { numRuns: 200 },
        );
      });
    }
  }

  it('the CLI and a config file give the same message for the same value', () => {
    const cli = (() => {
      try {
        parseFlag('grace', '2592000');
      } catch (err) {
        return (err as Error).message;
      }
    })();
    assert.throws(
      () => parseConfig('services:\n  s:\n    listen: 127.0.0.1:0\n    internal: echo\n    grace: 2592000\n', 'f.yaml'),
      { message: `f.yaml: services.s.${cli!.replace(/^--/, '').replace('"2592000"', '2592000')}` },
    );
  });
});

describe('every option of the table: the CLI, config files and the library derive from it', () => {
  const entries = Object.entries(OPTIONS) as Array<[string, OptionSpec]>;
  const flags = parseArgsOptions();
  const schema = configSchemaProperties();
  const defaults = createServer({}).options;

  for (const [name, o] of entries) {
    it(`${name}: flag, help, config schema and default as the table says`, async () => {
      if (o.flag !== undefined) {
        // The flag exists with its type, and serve --help shows it with the table's default.
        assert.equal(flags[o.flag]?.type, o.kind === 'boolean' ? 'boolean' : 'string');
        assert.equal(flags[o.flag]?.short, o.short);
        const line = serveHelp.split('\n').findIndex((l) => new RegExp(`^  (-\\w, )?--${o.flag}( |$)`).test(l));
        assert.ok(line >= 0, `--${o.flag} in serve --help`);
        const def = defaultText(o);
        if (def !== undefined) assert.ok(optionHelp().includes(`(default ${def})`), `--${o.flag}'s default ${def} in the help`);
        // Absent from argv: the server's resolved value is the table's default.
        if (o.scope === 'server') {
          const { options } = await parseServeArgs(['--port', '0']);
          assert.equal((options as Record<string, unknown>)[name] ?? undefined, name === 'port' ? 0 : name === 'proxyProtocol' ? false : undefined);
        }
      } else {
        assert.equal(Object.values(flags).length, entries.filter(([, e]) => e.flag !== undefined).length);
      }
      if (o.config !== undefined) {
        const [first, second] = o.config.split('.') as [string, string | undefined];
        const at = second === undefined ? schema[first] : (schema[first] as { properties: Record<string, unknown> }).properties[second];
        assert.ok(at, `config schema has ${o.config}`);
        if (o.kind === 'choice') assert.deepEqual((at as { enum: string[] }).enum, [...choicesOf(o)]);
      }
      // The library's default is the table's.
      const lib: Record<string, unknown> = {
        host: defaults.host,
        port: defaults.port,
        backlog: defaults.backlog,
        model: defaults.model,
        service: defaults.service.name,
        maxConns: defaults.maxConns,
        grace: defaults.grace,
        perSource: defaults.perSource,
        rate: defaults.rate,
        idleTimeout: defaults.limits.idleMs / 1000,
        timeLimit: defaults.limits.maxMs / 1000,
        spare: defaults.modelOptions.spare,
        accept: defaults.modelOptions.accept,
        maxConnsPerWorker: defaults.modelOptions.maxConnsPerWorker,
        workers: defaults.modelOptions.workers,
        fd: defaults.fd,
        proxyTimeout: createServer({ proxyProtocol: true }).options.proxy!.timeoutMs! / 1000,
        proxyV2Limit: createServer({ proxyProtocol: true }).options.proxy!.v2Limit,
        proxyProtocol: defaults.proxy !== undefined,
      };
      if (o.scope === 'server' && name in lib) assert.equal(lib[name], o.default, `library default of ${name}`);
    });
  }

  it('a value refused by the table is refused by the CLI, a config file and the library with the same words', () => {
    for (const name of names) {
      const o = NUMERIC_OPTIONS[name] as { flag?: string; config?: string; max: number };
      const bad = o.max + 1;
      const lib = (() => {
        try {
          createServer(libraryOptions(name, bad));
        } catch (err) {
          return (err as Error).message;
        }
      })();
      assert.equal(lib, `${name}: ${numericRule(name)}, got ${bad}`);
      if (o.flag !== undefined) assert.throws(() => parseFlag(name, String(bad)), { message: `--${o.flag}: ${numericRule(name)}, got "${bad}"` });
      if (o.config !== undefined) {
        const [group, key] = o.config.split('.');
        const field = key !== undefined ? `    ${group}: { ${key}: ${bad} }\n` : `    ${o.config}: ${bad}\n`;
        assert.throws(() => parseConfig(`services:\n  s:\n    listen: 127.0.0.1:0\n    internal: echo\n${field}`, 'f.yaml'), {
          message: `f.yaml: services.s.${o.config}: ${numericRule(name)}, got ${bad}`,
        });
      }
    }
  });
});

describe('the docs name every flag of the table', () => {
  it('each flag appears in README.md or docs/superserver.md', async () => {
    const fs = await import('node:fs');
    const text = ['README.md', 'docs/superserver.md'].map((f) => fs.readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8')).join('\n');
    for (const o of Object.values(OPTIONS) as OptionSpec[]) {
      if (o.flag !== undefined) assert.match(text, new RegExp(`--${o.flag}\\b`), `--${o.flag} in the docs`);
    }
  });
});

describe('options that apply to some models only (the table says which; strictModels: refused elsewhere)', () => {
  for (const [name, o] of Object.entries(OPTIONS) as Array<[string, OptionSpec]>) {
    if (o.models === undefined || !o.strictModels) continue;
    it(`${name}: refused under a model it does not apply to, unless it is the default`, () => {
      const other = (['fork', 'event', 'iterative', 'prefork', 'threads'] as const).find((m) => !o.models!.includes(m))!;
      const value = o.kind === 'choice' ? choicesOf(o).find((c) => c !== o.default)! : o.kind === 'boolean' ? true : 2;
      assert.throws(() => createServer({ model: other, [name]: value } as ServerOptions), {
        name: 'InvalidOptionError',
        message: `${name}: applies to the ${o.models!.join(' and ')} model${o.models!.length > 1 ? 's' : ''}, not ${other}`,
      });
      if (o.default !== undefined) createServer({ model: other, [name]: o.default } as ServerOptions);
      for (const m of o.models!) createServer({ model: m as ServerOptions['model'], [name]: value } as ServerOptions);
    });
  }
});
