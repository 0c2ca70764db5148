// A, B and C, interleaved round by round with the transport baselines (bare TCP and
// TLS pipes, scp, rsync): each round runs every item once, in an order that changes
// per round (lib/schedule.ts: each item at another place and behind another item), so
// slow drifts of the machine and what one item leaves behind for the next hit every
// item alike, and ratios are taken between runs of the same round.

import { join } from 'node:path';
import { makeTlsFiles, runPipe, startBareUpload, type BareUpload } from '../lib/baselines.js';
import type { Context } from '../lib/context.js';
import { withCpu } from '../lib/cpu.js';
import { flushDisk, makePayload, VerificationError, warmPayload, type Payload } from '../lib/files.js';
import { linkAcross, linkWithin, sendPaths, scriptClient, uploadFile, uploadNotices, type Link } from '../lib/link.js';
import { check, figure, ratio, section, settle, type Section } from '../lib/report.js';
import { roundOrder } from '../lib/schedule.js';
import { sshdMissing, startSshd, type Sshd } from '../lib/sshd.js';
import { formatSize, GIB, mibPerSec, MIB, pairRatio } from '../lib/stats.js';

export interface Links {
  across: Link;
  within: Link;
}

/** Peer in daemon 1 -> peer in daemon 2 (A, C, E, H), and two peers of daemon 3 (B). */
export async function setupLinks(ctx: Context, needWithin: boolean): Promise<Links> {
  const [sender, receiver] = [await ctx.daemon('a-sender'), await ctx.daemon('a-receiver')];
  const across = await linkAcross(sender, receiver);
  const within = needWithin ? await linkWithin(await ctx.daemon('b-one-daemon')) : across;
  return { across, within };
}

export function transferTimeout(bytes: number): number {
  return Math.max(60_000, (bytes / MIB / 5) * 1000);
}

export interface RoundsResult {
  baselines: Section;
  A: Section;
  B: Section;
  C: Section;
  payload: Payload;
}

export async function transferRounds(ctx: Context, links: Links, want: { B: boolean; C: boolean }): Promise<RoundsResult> {
  const { cfg } = ctx;
  const size = cfg.size;
  const label = formatSize(size);
  const baselines = section('baselines', 'transport baselines, interleaved with A, B, C');
  const A = section('A', `${label}, peer in daemon 1 -> peer in daemon 2, sent by path`);
  const B = section('B', `${label}, both peers in one daemon`);
  const C = section('C', `${label} uploaded as multipart, daemon 1 -> daemon 2`);

  ctx.log(`writing a ${label} payload`);
  const payload = await makePayload(ctx.tmp, 'payload.bin', size);
  const certs = await makeTlsFiles(ctx.tmp);
  let sshd: Sshd | null = null;
  if (cfg.ssh) {
    const missing = await sshdMissing();
    if (missing) {
      baselines.notes.push(`scp/rsync skipped: ${missing}`);
      console.error(`  notice: scp/rsync baselines skipped: ${missing}`);
    } else {
      sshd = await startSshd(join(ctx.tmp, 'sshd'));
      baselines.notes.push(`${sshd.versions.ssh}; ${sshd.versions.rsync ?? 'rsync not installed'}`);
      if (!sshd.hasRsync) console.error('  notice: rsync not installed; its baseline is skipped');
    }
  } else baselines.notes.push('scp/rsync not run in smoke mode');
  // C's floor: the same upload to a bare Fastify + @fastify/multipart route (lib/baselines.ts).
  const bare: BareUpload | null = want.C ? await startBareUpload() : null;

  // Warm the JIT and the connections with one small transfer each (not measured).
  const warm = await makePayload(ctx.tmp, 'warm-up.bin', Math.min(size, 16 * MIB));
  await sendPaths(links.across, [warm], transferTimeout(warm.size));
  if (want.B) await sendPaths(links.within, [warm], transferTimeout(warm.size));
  // The upload path too: a first upload runs its HTTP and multipart code cold.
  if (want.C) await uploadFile(links.across, warm, transferTimeout(warm.size));
  await bare?.run(warm);

  // CPU seconds per GiB of each daemon during A and B, by round (see lib/cpu.ts).
  // C's too, with the uploading client's, and the bare upload's (server and client).
  const cpuPerGiB = {
    aSender: [] as number[], aReceiver: [] as number[], b: [] as number[],
    cSender: [] as number[], cReceiver: [] as number[], cClient: [] as number[], bare: [] as number[],
  };
  // Minor page faults per GiB of the sending daemon in A and C (lib/cpu.ts).
  const faultsPerGiB = { a: [] as number[], c: [] as number[] };
  let cpuRound = 0;
  // Share of the payload in the page cache before each item warmed it (lib/files.ts).
  const cachedBefore: Array<number | null> = [];
  const items: Array<{ key: string; owner: Section; run: () => Promise<number> }> = [
    { key: 'tcp', owner: baselines, run: () => runPipe('tcp', payload, ctx.tmp, certs) },
    { key: 'tls', owner: baselines, run: () => runPipe('tls', payload, ctx.tmp, certs) },
    { key: 'A', owner: A, run: async () => {
      const { result, cpu, faults } = await withCpu([links.across.from.daemon.pid, links.across.to.daemon.pid], () => sendPaths(links.across, [payload], transferTimeout(size)));
      cpuPerGiB.aSender[cpuRound] = cpu[0]! / (size / GIB);
      faultsPerGiB.a[cpuRound] = faults[0]! / (size / GIB);
      cpuPerGiB.aReceiver[cpuRound] = cpu[1]! / (size / GIB);
      return mibPerSec(size, result.ms);
    } },
  ];
  if (sshd) items.push({ key: 'scp', owner: baselines, run: () => sshd.scp(payload) });
  if (sshd?.hasRsync) items.push({ key: 'rsync', owner: baselines, run: () => sshd.rsync(payload) });
  if (want.B) {
    items.push({ key: 'B', owner: B, run: async () => {
      const { result, cpu } = await withCpu([links.within.from.daemon.pid], () => sendPaths(links.within, [payload], transferTimeout(size)));
      cpuPerGiB.b[cpuRound] = cpu[0]! / (size / GIB);
      return mibPerSec(size, result.ms);
    } });
  }
  const withSize: boolean[] = [];
  if (want.C) {
    items.push({
      key: 'C', owner: C, run: async () => {
        const { result: r, cpu, faults } = await withCpu([links.across.from.daemon.pid, links.across.to.daemon.pid], () => uploadFile(links.across, payload, transferTimeout(size)));
        withSize.push(r.withSize);
        cpuPerGiB.cSender[cpuRound] = cpu[0]! / (size / GIB);
        faultsPerGiB.c[cpuRound] = faults[0]! / (size / GIB);
        cpuPerGiB.cReceiver[cpuRound] = cpu[1]! / (size / GIB);
        cpuPerGiB.cClient[cpuRound] = r.clientCpu / (size / GIB);
        return mibPerSec(size, r.ms);
      },
    });
  }
  if (bare) {
    items.push({ key: 'upload', owner: baselines, run: async () => {
      const r = await bare.run(payload);
      cpuPerGiB.bare[cpuRound] = (r.serverCpu + r.clientCpu) / (size / GIB);
      return r.mibps;
    } });
  }

  const runs: Record<string, number[]> = Object.fromEntries(items.map((i) => [i.key, []]));
  const broken = new Set<string>();
  try {
    for (let round = 0; round < cfg.rounds; round++) {
      cpuRound = round;
      const order = roundOrder(items.length, round).map((i) => items[i]!);
      const line: string[] = [];
      for (const item of order) {
        if (broken.has(item.key)) continue;
        try {
          await flushDisk();
          cachedBefore.push(await warmPayload(payload));
          const v = await item.run();
          runs[item.key]![round] = v;
          line.push(`${item.key} ${v.toFixed(0)}`);
        } catch (err) {
          // A wrong file ends the whole run; a crash loses only that item's later rounds.
          if (err instanceof VerificationError) throw err;
          broken.add(item.key);
          item.owner.error = `${item.key}: ${(err as Error).stack ?? err}`;
          ctx.log(`${item.key} failed: ${(err as Error).message}`);
        }
      }
      ctx.log(`round ${round + 1}/${cfg.rounds} MiB/s: ${line.join(', ')}`);
    }
  } finally {
    await sshd?.stop();
    await bare?.stop();
  }

  // Arrays indexed by round; a round an item missed is NaN so pairs stay aligned.
  const byRound = (key: string) => Array.from({ length: cfg.rounds }, (_, i) => runs[key]?.[i] ?? NaN);
  const perRound = (runs: number[]) => Array.from({ length: cfg.rounds }, (_, i) => runs[i] ?? NaN);
  const cpuFigure = (runs: number[], label: string) => figure(label, 'CPU s/GiB', perRound(runs));
  const sum = (...parts: number[][]) => perRound(parts[0]!).map((_, i) => parts.reduce((t, p) => t + (p[i] ?? NaN), 0));
  for (const key of ['tcp', 'tls', 'scp', 'rsync']) {
    if (runs[key]?.length) baselines.figures[key] = figure(`${key === 'tcp' || key === 'tls' ? `bare Node pipe, ${key.toUpperCase()}` : key}, ${label}`, 'MiB/s', byRound(key));
  }
  if (runs.upload?.length) {
    baselines.figures.upload = figure(`bare multipart upload (bytes counted), ${label}`, 'MiB/s', byRound('upload'));
    baselines.figures.uploadCpu = cpuFigure(cpuPerGiB.bare, 'bare upload: server + client CPU per GiB');
  }
  A.figures.speed = figure(`throughput, ${label}`, 'MiB/s', byRound('A'));
  for (const [key, base, label] of [['vsScp', 'scp', 'A / scp'], ['vsRsync', 'rsync', 'A / rsync'], ['vsTls', 'tls', 'A / bare TLS pipe']] as const) {
    const r = pairRatio(byRound('A'), byRound(base));
    if (r.runs.length) A.ratios[key] = ratio(label, r);
  }
  check(A, 'vsScp', '>=', 1.3, '>= 1.3x scp');
  const cpuA = sum(cpuPerGiB.aSender, cpuPerGiB.aReceiver);
  A.figures.cpuSender = cpuFigure(cpuPerGiB.aSender, 'sending daemon CPU (user+sys) per GiB');
  A.figures.cpuReceiver = cpuFigure(cpuPerGiB.aReceiver, 'receiving daemon CPU (user+sys) per GiB');
  A.figures.cpuAll = cpuFigure(cpuA, 'both daemons CPU per GiB');
  A.figures.faultsSender = figure('sending daemon minor page faults per GiB', 'faults', perRound(faultsPerGiB.a));
  if (!sshd) A.notes.push('no scp in this run: the target is not judged');
  const known = cachedBefore.filter((c): c is number => c !== null);
  baselines.notes.push(known.length
    ? `payload read into the page cache before every item (${known.filter((c) => c < 0.99).length} of ${known.length} found it partly evicted, lowest ${(100 * Math.min(...known)).toFixed(0)}% cached)`
    : 'payload read into the page cache before every item (no fincore: eviction not measured)');
  if (want.B) {
    B.figures.speed = figure(`throughput, ${label}`, 'MiB/s', byRound('B'));
    B.figures.cpu = cpuFigure(cpuPerGiB.b, 'daemon CPU (user+sys) per GiB');
    B.ratios.vsA = ratio('B / A', pairRatio(byRound('B'), byRound('A')));
    check(B, 'vsA', '>=', 0.6, '>= 0.6x A');
  }
  if (want.C) {
    C.figures.speed = figure(`throughput incl. upload, ${label}`, 'MiB/s', byRound('C'));
    C.ratios.vsA = ratio('C / A', pairRatio(byRound('C'), byRound('A')));
    check(C, 'vsA', '>=', 0.7, '>= 0.7x A');
    // Why C / A is where it is: on cores that both transfers keep busy, throughput goes
    // as the inverse of CPU per GiB, so C / A follows A's CPU / C's. What C adds to A's
    // work, set beside what the bare upload route costs, is what the upload path adds
    // beyond Node's HTTP stack, the multipart parser and curl.
    const cpuC = sum(cpuPerGiB.cSender, cpuPerGiB.cReceiver, cpuPerGiB.cClient);
    C.figures.cpuSender = cpuFigure(cpuPerGiB.cSender, 'sending daemon CPU (user+sys) per GiB');
    C.figures.cpuReceiver = cpuFigure(cpuPerGiB.cReceiver, 'receiving daemon CPU (user+sys) per GiB');
    C.figures.cpuClient = cpuFigure(cpuPerGiB.cClient, 'uploading client CPU per GiB');
    C.figures.cpuAll = cpuFigure(cpuC, 'client + both daemons CPU per GiB');
    C.figures.faultsSender = figure('sending daemon minor page faults per GiB', 'faults', perRound(faultsPerGiB.c));
    C.ratios.vsBare = ratio('C / bare multipart upload', pairRatio(byRound('C'), byRound('upload')));
    C.ratios.cpuBound = ratio('A CPU / C CPU (C / A if CPU-bound)', pairRatio(cpuA, cpuC));
    C.figures.cpuOverA = cpuFigure(perRound(cpuC).map((c, i) => c - cpuA[i]!), 'C CPU - A CPU, per GiB (cf. bare upload)');
    C.notes.push(`uploaded with ${(await scriptClient()) === 'curl' ? 'curl -F (as a script would)' : 'the Node client (no curl here, or MESHDROP_BENCH_UPLOADER=node)'}`);
    C.notes.push(...new Set(uploadNotices));
    if (withSize.length) C.notes.push(withSize.every(Boolean) ? 'uploads carried the size field' : 'uploads without the size field');
  }
  for (const s of [baselines, A, B, C]) settle(s);
  if (baselines.error) baselines.status = 'ERROR';
  return { baselines, A, B, C, payload };
}
