// The option table (src/options.ts): every numeric serve option is checked the same way
// by the library, the `serve` flags and config files, and nothing reaches a timer beyond 2^31-1 ms.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError, InvalidOptionError } from '../../src/errors.js';
import { MAX_SECONDS, MAX_TIMER_MS, NUMERIC_OPTIONS, numericRule, parseFlag, type NumericOptionName } from '../../src/options.js';
import { createServer, type ServerOptions } from '../../src/server.js';
import { parseConfig } from '../../src/super/config.js';

const names = Object.keys(NUMERIC_OPTIONS) as NumericOptionName[];
/** Where a numeric field sits in a config file's service (those a config file has). */
const CONFIG_PATH: Partial<Record<NumericOptionName, string>> = {
  workers: 'workers',
  spare: 'spare',
  backlog: 'backlog',
  grace: 'grace',
  proxyTimeout: 'proxyTimeout',
  maxConns: 'limits.maxConns',
  perSource: 'limits.perSource',
  rate: 'limits.rate',
  idleTimeout: 'limits.idleTimeout',
  timeLimit: 'limits.timeLimit',
};

/** Values around every boundary that matters, plus anything at all. */
function values(name: NumericOptionName): fc.Arbitrary<number> {
  const o = NUMERIC_OPTIONS[name];
  return fc.oneof(
    fc.constantFrom(o.min, o.max, o.min - 1, o.max + 1, o.max + 0.5, 2 ** 31 / 1000, 2 ** 31, 2592000, 1e308, -0.5, 0.25, NaN, Infinity),
    fc.integer({ min: -10, max: o.max + 10 }),
    fc.double({ min: -1, max: o.max * 2, noNaN: true }),
    fc.double(),
  );
}

/** Library options for one field (proxyTimeout and proxyV2Limit only matter with proxyProtocol). */
function libraryOptions(name: NumericOptionName, value: number): ServerOptions {
  const base: ServerOptions = name === 'proxyTimeout' || name === 'proxyV2Limit' ? { proxyProtocol: true } : {};
  return { ...base, [name]: value };
}

/** The resolved value createServer keeps for a field, in the option's own unit. */
function resolved(name: NumericOptionName, options: ReturnType<typeof createServer>['options']): number | undefined {
  switch (name) {
    case 'idleTimeout':
      return options.limits.idleMs / 1000;
    case 'timeLimit':
      return options.limits.maxMs / 1000;
    case 'proxyTimeout':
      return options.proxy!.timeoutMs! / 1000;
    case 'proxyV2Limit':
      return options.proxy!.v2Limit;
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

    const flag = NUMERIC_OPTIONS[name].flag;
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
            const field = at.startsWith('limits.') ? `    limits: { ${at.slice(7)}: ${yaml} }\n` : `    ${at}: ${yaml}\n`;
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
