/**
 * Where the entry points of children and threads are, and how Node must be started to
 * run them: from dist/ (built) `node dist/workers/<name>.js`; from src/ under a TypeScript
 * loader (tsx, the tests) `node --import tsx src/workers/<name>.ts`, with the loader flags
 * this process was started with. So unit tests start pool, fork and worker code without
 * a build.
 */
import { fileURLToPath } from 'node:url';

/** Running from the TypeScript sources (this file is a .ts under a loader). */
const fromSource = import.meta.url.endsWith('.ts');

/** The loader flags of this process (`--import tsx`), which a child needs to run a .ts entry. */
function loaderArgs(): string[] {
  const out: string[] = [];
  const a = process.execArgv;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '--import' || a[i] === '--loader' || a[i] === '--require') out.push(a[i]!, a[++i]!);
    else if (/^--(import|loader|require)=/.test(a[i]!)) out.push(a[i]!);
  }
  return out;
}

/** The URL of entry `name` (conn, spare, prefork-worker, thread-worker) next to this file. */
export function entryURL(name: string): URL {
  return new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, import.meta.url);
}

/**
 * What `new Worker()` runs for entry `name`: the built .js; from source, a small module
 * that registers tsx's loader in the thread first (Node 20 does not carry a loader
 * registered by `--import` into worker threads), then imports the .ts entry.
 */
export function threadEntry(name: string): URL {
  if (!fromSource) return entryURL(name);
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import { register } from ${JSON.stringify(api)};\nregister();\nawait import(${JSON.stringify(entryURL(name).href)});\n`;
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

/** Node's arguments before the child's own: loader flags (from source only), then the entry's path. */
export function entryArgs(name: string): string[] {
  return [...(fromSource ? loaderArgs() : []), fileURLToPath(entryURL(name))];
}
