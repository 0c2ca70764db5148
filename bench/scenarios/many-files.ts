// E: many small files from one peer to another (daemon 1 -> daemon 2) in one POST by
// path; timed until the last one completed at the receiver, every one verified after.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '../lib/context.js';
import { makeSmallPayloads } from '../lib/files.js';
import { sendPaths, type Link } from '../lib/link.js';
import { check, figure, section, settle, type Section } from '../lib/report.js';

export async function manyFiles(ctx: Context, link: Link): Promise<Section> {
  const { cfg } = ctx;
  const s = section('E', `${cfg.files} files of ${cfg.fileSize / 1024} KiB, daemon 1 -> daemon 2, one POST by path`);
  const dir = join(ctx.tmp, 'e');
  mkdirSync(dir, { recursive: true });
  const files = await makeSmallPayloads(dir, cfg.files, cfg.fileSize);
  const rates: number[] = [];
  for (let run = 0; run < cfg.fileRuns; run++) {
    const { ms } = await sendPaths(link, files, 120_000 + cfg.files * 200);
    rates.push(cfg.files / (ms / 1000));
    ctx.log(`E run ${run + 1}/${cfg.fileRuns}: ${rates.at(-1)!.toFixed(0)} files/s (${(ms / 1000).toFixed(2)} s)`);
  }
  s.figures.rate = figure(`${cfg.files} x ${cfg.fileSize / 1024} KiB`, 'files/s', rates);
  check(s, 'rate', '>=', 200, '>= 200 files/s');
  return settle(s);
}
