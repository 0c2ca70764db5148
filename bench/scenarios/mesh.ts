// F: N peers added to one daemon, one POST after another as a script would, timed
// from the first POST until GET /api/peers shows the full mesh (every peer with N-1
// connections), against a bare loop making as many TLS 1.3 connections (see
// tls-mesh-child.ts). G: GET /api/peers on that daemon under concurrent clients,
// against a bare Fastify route serving the same JSON. Runs alternate which goes first.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePorts } from '../../tests/helpers/ports.js';
import { spawnChild } from '../lib/child.js';
import type { Context } from '../lib/context.js';
import type { Daemon } from '../lib/daemon.js';
import { runLoad } from '../lib/load.js';
import { check, figure, ratio, section, settle, type Section } from '../lib/report.js';
import { pairRatio, percentile } from '../lib/stats.js';

async function meshUp(ctx: Context, d: Daemon, n: number): Promise<number> {
  const ports = await freePorts(n);
  const t0 = performance.now();
  for (const port of ports) await d.api.addPeer(port);
  const deadline = Date.now() + 60_000 + n * n * 20;
  for (;;) {
    const peers = await d.api.peers();
    if (peers.length === n && peers.every((p) => p.connections === n - 1)) return performance.now() - t0;
    if (Date.now() > deadline) throw new Error(`no full mesh of ${n} peers; connections: ${peers.map((p) => p.connections).join(',')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function bareMesh(n: number): Promise<number> {
  const child = spawnChild('tls-mesh-child.ts', [String(n)]);
  try {
    return (await child.next<{ ms: number }>()).ms;
  } finally {
    await child.kill();
  }
}

export interface MeshResult {
  F: Section;
  /** The daemon of the last F run, still holding the mesh (for G); the caller stops it. */
  daemon: Daemon | null;
}

export async function mesh(ctx: Context, keepForG: boolean): Promise<MeshResult> {
  const { cfg } = ctx;
  const n = cfg.peers;
  const F = section('F', `${n} peers in one daemon until the full mesh (${(n * (n - 1)) / 2} connections)`);
  const daemonMs: number[] = [];
  const bareMs: number[] = [];
  let keep: Daemon | null = null;
  for (let run = 0; run < cfg.meshRuns; run++) {
    const d = await ctx.daemon('f-mesh');
    const measureDaemon = async () => (daemonMs[run] = await meshUp(ctx, d, n));
    const measureBare = async () => (bareMs[run] = await bareMesh(n));
    await inTurn(run, measureDaemon, measureBare);
    ctx.log(`F run ${run + 1}/${cfg.meshRuns}: daemon ${daemonMs[run]!.toFixed(0)} ms, bare TLS loop ${bareMs[run]!.toFixed(0)} ms`);
    if (keepForG && run === cfg.meshRuns - 1) keep = d;
    else await ctx.stopDaemons([d]);
  }
  F.figures.daemon = figure('daemon, first POST to full mesh', 'ms', daemonMs);
  F.figures.bare = figure('bare TLS 1.3 loop, same connections', 'ms', bareMs);
  F.ratios.vsBare = ratio('daemon / bare loop', pairRatio(daemonMs, bareMs));
  check(F, 'vsBare', '<=', 3, 'within 3x');
  return { F: settle(F), daemon: keep };
}

export async function peersUnderLoad(ctx: Context, d: Daemon): Promise<Section> {
  const { cfg } = ctx;
  const G = section('G', `GET /api/peers with ${cfg.peers} peers, ${cfg.clients} concurrent keep-alive clients, ${cfg.requests} requests per run`);
  const doc = await d.api.request('GET', '/api/peers');
  const docPath = join(ctx.tmp, 'peers.json');
  writeFileSync(docPath, JSON.stringify(doc.body));
  const server = spawnChild('json-server-child.ts', [docPath]);
  const p = { d50: [] as number[], d99: [] as number[], b50: [] as number[], b99: [] as number[], drps: [] as number[], brps: [] as number[] };
  let bytes = 0;
  try {
    const { port } = await server.next<{ port: number }>();
    for (let run = 0; run < cfg.loadRuns; run++) {
      const daemonRun = async () => {
        const r = await runLoad(`${d.base}/api/peers`, { authorization: `Bearer ${d.token}` }, cfg.clients, cfg.requests);
        p.d50[run] = percentile(r.latenciesMs, 50);
        p.d99[run] = percentile(r.latenciesMs, 99);
        p.drps[run] = r.latenciesMs.length / r.seconds;
        bytes = r.bytes;
      };
      const bareRun = async () => {
        const r = await runLoad(`http://127.0.0.1:${port}/api/peers`, {}, cfg.clients, cfg.requests);
        p.b50[run] = percentile(r.latenciesMs, 50);
        p.b99[run] = percentile(r.latenciesMs, 99);
        p.brps[run] = r.latenciesMs.length / r.seconds;
      };
      await inTurn(run, daemonRun, bareRun);
      ctx.log(`G run ${run + 1}/${cfg.loadRuns}: daemon p50 ${p.d50[run]!.toFixed(1)} / p99 ${p.d99[run]!.toFixed(1)} ms, bare p50 ${p.b50[run]!.toFixed(1)} / p99 ${p.b99[run]!.toFixed(1)} ms`);
    }
  } finally {
    await server.kill();
  }
  G.notes.push(`response body ${bytes} bytes`);
  G.figures.daemonP50 = figure('daemon p50', 'ms', p.d50);
  G.figures.daemonP99 = figure('daemon p99', 'ms', p.d99);
  G.figures.daemonRps = figure('daemon throughput', 'req/s', p.drps);
  G.figures.bareP50 = figure('bare Fastify p50', 'ms', p.b50);
  G.figures.bareP99 = figure('bare Fastify p99', 'ms', p.b99);
  G.figures.bareRps = figure('bare Fastify throughput', 'req/s', p.brps);
  G.ratios.p50 = ratio('p50 daemon / bare', pairRatio(p.d50, p.b50));
  G.ratios.p99 = ratio('p99 daemon / bare', pairRatio(p.d99, p.b99));
  check(G, 'p99', '<=', 5, 'p99 within 5x');
  return settle(G);
}

/** Runs both, the daemon first on even runs and the baseline first on odd ones, so neither always goes first. */
async function inTurn(run: number, daemon: () => Promise<unknown>, bare: () => Promise<unknown>): Promise<void> {
  if (run % 2 === 0) {
    await daemon();
    await bare();
  } else {
    await bare();
    await daemon();
  }
}
