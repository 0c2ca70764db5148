// H: many event-stream clients on both daemons while an A transfer runs. Every client
// must see every event of the transfer's span (seq numbers gap-free, no duplicates,
// so all clients saw the same set), including the transfer.completed it ends with.

import type { Context } from '../lib/context.js';
import { recordingStream, type Daemon, type EventStream } from '../lib/daemon.js';
import { flushDisk, type Payload } from '../lib/files.js';
import { sendPaths, type Link } from '../lib/link.js';
import { check, figure, ratio, section, settle, type Section } from '../lib/report.js';
import { formatSize, median, mibPerSec, pairRatio } from '../lib/stats.js';
import { transferTimeout } from './transfers.js';

interface Watched {
  daemon: Daemon;
  port: number;
  clients: EventStream[];
  completed: Set<EventStream>;
  start: number;
}

/** Events missing from `client` in (start, end]: gaps, plus duplicates counted as damage too. */
function lostIn(client: EventStream, start: number, end: number): number {
  const inRange = client.seqs.filter((s) => s > start && s <= end);
  const distinct = new Set(inRange);
  return end - start - distinct.size + (inRange.length - distinct.size);
}

export async function eventsDuringTransfer(ctx: Context, link: Link, payload: Payload, aSpeeds: readonly number[]): Promise<Section> {
  const { cfg } = ctx;
  const H = section('H', `${cfg.wsClients} event-stream clients on each daemon while A (${formatSize(payload.size)}) runs`);
  const lost: number[] = [];
  const missingCompleted: number[] = [];
  const perClient: number[] = [];
  const speeds: number[] = [];
  for (let run = 0; run < cfg.eventRuns; run++) {
    const watched: Watched[] = [];
    for (const end of [link.from, link.to]) {
      const clients = await Promise.all(Array.from({ length: cfg.wsClients }, () => recordingStream(end.daemon)));
      const w: Watched = { daemon: end.daemon, port: end.port, clients, completed: new Set(), start: 0 };
      for (const c of clients) c.on((e) => {
        if (e.type === 'transfer.completed' && e.data?.transfer?.peer === end.port && e.data.transfer.name === payload.name) w.completed.add(c);
      });
      watched.push(w);
    }
    try {
      // Every client is subscribed before `start`, so each must hold all of (start, end].
      await flushDisk();
      for (const w of watched) w.start = await w.daemon.api.lastSeq();
      const { ms } = await sendPaths(link, [payload], transferTimeout(payload.size));
      speeds.push(mibPerSec(payload.size, ms));
      let runLost = 0;
      let runMissing = 0;
      for (const w of watched) {
        const end = await w.daemon.api.lastSeq();
        // Let the last events reach every client (bounded; a client that never gets them has lost them).
        const deadline = Date.now() + 10_000;
        while (w.clients.some((c) => (c.seqs.at(-1) ?? 0) < end && c.closeCode === null) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
        }
        for (const c of w.clients) runLost += lostIn(c, w.start, end);
        runMissing += w.clients.length - w.completed.size;
        perClient.push(end - w.start);
      }
      lost.push(runLost);
      missingCompleted.push(runMissing);
      ctx.log(`H run ${run + 1}/${cfg.eventRuns}: ${runLost} events lost, ${runMissing} clients without transfer.completed, A at ${speeds.at(-1)!.toFixed(0)} MiB/s`);
    } finally {
      for (const w of watched) for (const c of w.clients) c.close();
    }
  }
  H.figures.lost = figure('events lost, all clients', 'events', lost);
  H.figures.noCompleted = figure('clients that missed transfer.completed', 'clients', missingCompleted);
  H.figures.span = figure('events per client per daemon in the span', 'events', perClient);
  H.figures.speed = figure(`A throughput with the clients attached`, 'MiB/s', speeds);
  // Against A's median of the rounds (not interleaved pairwise: H runs after them).
  if (aSpeeds.length) H.ratios.vsA = ratio('throughput / median A of the rounds', pairRatio(speeds, speeds.map(() => median(aSpeeds))));
  check(H, 'lost', '<=', 0, 'none lost', 'max');
  check(H, 'noCompleted', '<=', 0, 'every client saw it', 'max');
  return settle(H);
}
