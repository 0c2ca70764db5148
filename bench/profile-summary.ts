// Summarises V8 .cpuprofile files (from `node --cpu-prof`): the functions with the
// most self time, with their share of the profile. Used for docs/PERFORMANCE.md:
//
//   npx tsx bench/run.ts --only=B --rounds=3 --profile=/tmp/prof --out /tmp/prof/ab.json
//   npx tsx bench/profile-summary.ts /tmp/prof/*/*.cpuprofile [--top=15]
//
// (--only=B runs A too, as B's reference: a-sender-1/, a-receiver-2/, b-one-daemon-3/.)
// Node names each file CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is
// the main thread, others are worker threads.

import { readFileSync } from 'node:fs';
import { basename, dirname, relative } from 'node:path';
import { ROOT } from './lib/daemon.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Entry {
  name: string;
  where: string;
  ms: number;
  share: number;
}

export function summarise(profile: Profile): { totalMs: number; idleMs: number; top: Entry[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // Sample i lasted timeDeltas[i + 1] (the delta before the next sample).
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + dt);
  }
  const merged = new Map<string, Entry>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    totalUs += us;
    if (f.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const url = f.url.replace(/^file:\/\//, '');
    const where = url ? `${url.startsWith(ROOT) ? relative(ROOT, url) : url.replace(/^.*node_modules\//, '')}:${f.lineNumber + 1}` : '';
    const name = f.functionName || '(anonymous)';
    const key = `${name} ${where}`;
    const e = merged.get(key) ?? { name, where, ms: 0, share: 0 };
    e.ms += us / 1000;
    merged.set(key, e);
  }
  const busyMs = (totalUs - idleUs) / 1000;
  const top = [...merged.values()].sort((a, b) => b.ms - a.ms).map((e) => ({ ...e, share: e.ms / busyMs }));
  return { totalMs: totalUs / 1000, idleMs: idleUs / 1000, top };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const topArg = args.find((a) => a.startsWith('--top='));
  const n = topArg ? Number(topArg.slice(6)) : 12;
  for (const file of args.filter((a) => !a.startsWith('--'))) {
    const { totalMs, idleMs, top } = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile);
    console.log(`\n${basename(dirname(file))}/${basename(file)}: ${(totalMs / 1000).toFixed(1)} s profiled, ${((totalMs - idleMs) / 1000).toFixed(1)} s busy (the rest idle)`);
    console.log('| self ms | % of busy | function | where |\n| ---: | ---: | --- | --- |');
    for (const e of top.slice(0, n)) console.log(`| ${e.ms.toFixed(0)} | ${(e.share * 100).toFixed(1)} | ${e.name} | ${e.where} |`);
  }
}
