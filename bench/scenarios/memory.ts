// D: peak resident memory of the sending and the receiving daemon while a file moves
// between them, for a small file and for large ones. Flat memory means the large
// file's peak is close to the small one's. Every size gets fresh daemons, since VmHWM
// is a high-water mark over a process's whole life.

import { rm } from 'node:fs/promises';
import type { Context } from '../lib/context.js';
import { flushDisk, makePayload, type Payload } from '../lib/files.js';
import { linkAcross, sendPaths } from '../lib/link.js';
import { check, figure, ratio, section, settle, type Section } from '../lib/report.js';
import { RssSampler, supported } from '../lib/rss.js';
import { formatSize, pairRatio } from '../lib/stats.js';
import { transferTimeout } from './transfers.js';

const LIMIT_MB = 200;

export async function memory(ctx: Context, reuse: Payload | null): Promise<Section> {
  const { cfg } = ctx;
  const s = section('D', `peak RSS per daemon during A-style transfers of ${cfg.memSizes.map(formatSize).join(' / ')}`);
  if (!supported()) {
    s.notes.push('needs Linux /proc');
    return settle(s);
  }
  const payloads: Payload[] = [];
  const made: Payload[] = [];
  try {
    for (const size of cfg.memSizes) {
      if (reuse?.size === size) payloads.push(reuse);
      else {
        ctx.log(`writing a ${formatSize(size)} payload for D`);
        const p = await makePayload(ctx.tmp, `mem-${size}.bin`, size);
        payloads.push(p);
        made.push(p);
      }
    }
    // peaks[size index][run] for each end.
    const peaks = { sender: payloads.map(() => [] as number[]), receiver: payloads.map(() => [] as number[]) };
    for (let run = 0; run < cfg.memRuns; run++) {
      for (const [i, payload] of payloads.entries()) {
        const [a, b] = [await ctx.daemon('d-sender'), await ctx.daemon('d-receiver')];
        try {
          const link = await linkAcross(a, b);
          await flushDisk();
          const sampler = new RssSampler([a.pid, b.pid]);
          sampler.start();
          await sendPaths(link, [payload], transferTimeout(payload.size));
          const result = await sampler.stop();
          link.from.events.close();
          link.to.events.close();
          peaks.sender[i]![run] = result.get(a.pid)!.peakMb;
          peaks.receiver[i]![run] = result.get(b.pid)!.peakMb;
          ctx.log(`D ${formatSize(payload.size)}: sender ${peaks.sender[i]![run]!.toFixed(0)} MB, receiver ${peaks.receiver[i]![run]!.toFixed(0)} MB (${result.get(a.pid)!.samples} samples)`);
        } finally {
          await ctx.stopDaemons([a, b]);
        }
      }
    }
    for (const end of ['sender', 'receiver'] as const) {
      for (const [i, payload] of payloads.entries()) {
        const key = `${end}${i}`;
        s.figures[key] = figure(`${end} peak, ${formatSize(payload.size)}`, 'MB', peaks[end][i]!);
        check(s, key, '<=', LIMIT_MB, `under ${LIMIT_MB} MB`, 'max');
      }
      for (let i = 1; i < payloads.length; i++) {
        const key = `${end}Ratio${i}`;
        s.ratios[key] = ratio(`${end} ${formatSize(payloads[i]!.size)} / ${formatSize(payloads[0]!.size)}`, pairRatio(peaks[end][i]!, peaks[end][0]!));
        // The target of issue 4 is on the second size (1 GiB vs 64 MiB); larger ones are reported.
        if (i === 1) check(s, key, '<=', 1.3, 'within 1.3x of the small file');
      }
    }
  } finally {
    await Promise.all(made.map((p) => rm(p.path, { force: true })));
  }
  return settle(s);
}
