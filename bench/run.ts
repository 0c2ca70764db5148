// npm run bench: starts real daemons as separate processes, drives them over the REST
// API like a user's script, checks every received file's SHA-256, measures scenarios
// A-H of issue 4 next to baselines from the same session, prints a table and writes
// the JSON (bench/results/latest.json by default). See docs/PERFORMANCE.md.
//
// Exit status: 0 unless a received file was wrong or a scenario crashed; missed
// targets are reported as FAIL but do not change it (machines are too noisy to gate on).

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs, SCENARIOS, type ScenarioId } from './lib/config.js';
import { makeContext } from './lib/context.js';
import { ROOT } from './lib/daemon.js';
import { makePayload, VerificationError, type Payload } from './lib/files.js';
import { section, table, type Section } from './lib/report.js';
import { eventsDuringTransfer } from './scenarios/events.js';
import { manyFiles } from './scenarios/many-files.js';
import { memory } from './scenarios/memory.js';
import { mesh, peersUnderLoad } from './scenarios/mesh.js';
import { setupLinks, transferRounds, type Links } from './scenarios/transfers.js';

const cfg = parseArgs(process.argv.slice(2));
const want = (id: ScenarioId) => cfg.only.has(id);
const started = new Date();
const tmp = mkdtempSync(join(os.tmpdir(), 'meshdrop-bench-'));
const ctx = makeContext(cfg, tmp);
const sections = new Map<string, Section>();
let wrongFile: string | null = null;
let crashed = false;

// Ctrl-C: the exit handler in lib/daemon.ts kills the daemons; remove the scratch files too.
process.once('SIGINT', () => {
  rmSync(tmp, { recursive: true, force: true });
  process.exit(130);
});

/** Runs one part; a crash is recorded in its sections and the run goes on with the others. */
async function guarded(ids: string[], fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const message = (err as Error).stack ?? String(err);
    if (err instanceof VerificationError) wrongFile = (err as Error).message;
    else crashed = true;
    ctx.log(`${ids.join(', ')} crashed: ${message}`);
    for (const id of ids) {
      const s = sections.get(id) ?? section(id, '');
      s.error ??= message;
      s.status = 'ERROR';
      sections.set(id, s);
    }
  }
}

function osRelease(): string | null {
  try {
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

function machine() {
  const cpus = os.cpus();
  const git = (...args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return null;
    }
  };
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    ramBytes: os.totalmem(),
    ramGiB: +(os.totalmem() / 1024 ** 3).toFixed(1),
    node: process.version,
    kernel: os.release(),
    os: os.version(),
    distro: osRelease(),
    arch: process.arch,
    // Other work on the machine skews figures; the load average at the start tells.
    loadAverageAtStart: os.loadavg().map((v) => +v.toFixed(2)),
    commit: git('rev-parse', '--short', 'HEAD'),
    // Earlier results in bench/results/ are no change to the code measured.
    dirtyWorkTree: git('status', '--porcelain', '--untracked-files=no', '--', '.', ':(exclude)bench/results') ? true : false,
  };
}

const machineInfo = machine();
ctx.log(`mode ${cfg.mode}, scenarios ${[...cfg.only].join('')}, scratch ${tmp}`);
const needRounds = want('A') || want('B') || want('C');
const needLinks = needRounds || want('E') || want('H');
let links: Links | null = null;
let aPayload: Payload | null = null;
let aSpeeds: number[] = [];

if (needLinks) {
  await guarded(['A', 'B', 'C', 'E', 'H'].filter((id) => want(id as ScenarioId)), async () => {
    links = await setupLinks(ctx, want('B'));
  });
}
if (links && needRounds) {
  const l: Links = links;
  await guarded(['baselines', 'A', 'B', 'C'].filter((id) => id === 'baselines' || want(id as ScenarioId) || id === 'A'), async () => {
    const r = await transferRounds(ctx, l, { B: want('B'), C: want('C') });
    sections.set('baselines', r.baselines);
    sections.set('A', r.A);
    if (want('B')) sections.set('B', r.B);
    if (want('C')) sections.set('C', r.C);
    aPayload = r.payload;
    aSpeeds = r.A.figures.speed?.runs ?? [];
  });
}
if (links && want('E')) {
  const l: Links = links;
  await guarded(['E'], async () => void sections.set('E', await manyFiles(ctx, l.across)));
}
if (links && want('H')) {
  const l: Links = links;
  await guarded(['H'], async () => {
    const payload = aPayload ?? (await makePayload(tmp, 'payload.bin', cfg.size));
    sections.set('H', await eventsDuringTransfer(ctx, l.across, payload, aSpeeds));
  });
}
if (links) {
  const l: Links = links;
  for (const end of [l.across.from, l.across.to, l.within.from]) end.events.close();
}
await ctx.stopDaemons();
if (want('D')) await guarded(['D'], async () => void sections.set('D', await memory(ctx, aPayload)));
if (want('F') || want('G')) {
  await guarded(['F', 'G'].filter((id) => want(id as ScenarioId)), async () => {
    const m = await mesh(ctx, want('G'));
    if (want('F')) sections.set('F', m.F);
    if (m.daemon) {
      const d = m.daemon;
      await guarded(['G'], async () => void sections.set('G', await peersUnderLoad(ctx, d)));
    }
  });
}
await ctx.stopDaemons();
rmSync(tmp, { recursive: true, force: true });

const order = ['baselines', ...SCENARIOS].filter((id) => sections.has(id));
const printed = order.map((id) => sections.get(id)!);
const finished = new Date();
console.log(`\nmeshdrop bench, ${cfg.mode} mode, ${((finished.getTime() - started.getTime()) / 1000).toFixed(0)} s\n`);
console.log(table(printed));
for (const s of printed) {
  const notes = [...s.notes, ...s.checks.map((c) => `${c.figure}: target ${c.target} -> ${c.status}${c.value === null ? '' : ` (${c.on} ${+c.value.toFixed(3)})`}`)];
  if (notes.length) console.log(`\n${s.id}. ${s.title}\n${notes.map((n) => `  - ${n}`).join('\n')}`);
}

const result = {
  tool: 'meshdrop bench',
  mode: cfg.mode,
  args: process.argv.slice(2),
  startedAt: started.toISOString(),
  finishedAt: finished.toISOString(),
  durationSeconds: Math.round((finished.getTime() - started.getTime()) / 1000),
  machine: { ...machineInfo, loadAverageAtEnd: os.loadavg().map((v) => +v.toFixed(2)) },
  config: { ...cfg, only: [...cfg.only] },
  verified: wrongFile === null,
  baselines: sections.get('baselines') ?? null,
  scenarios: Object.fromEntries(SCENARIOS.filter((id) => sections.has(id)).map((id) => [id, sections.get(id)])),
};
if (cfg.out) {
  const out = resolve(ROOT, cfg.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`\nwrote ${out}`);
}
if (wrongFile) console.error(`\n*** A RECEIVED FILE WAS WRONG: ${wrongFile} ***`);
if (crashed) console.error('\n*** a scenario crashed: see ERROR above ***');
process.exit(wrongFile || crashed ? 1 : 0);
