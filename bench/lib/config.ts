// Command line and the sizes of each mode. quick (the default) keeps a run to a few
// minutes; full uses the sizes of issue 4; smoke is tiny and exists so a test can run
// the whole harness end to end in well under a minute.

import { GIB, MIB } from './stats.js';

export type Mode = 'quick' | 'full' | 'smoke';
export const SCENARIOS = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H'] as const;
export type ScenarioId = (typeof SCENARIOS)[number];

export interface Config {
  mode: Mode;
  only: Set<ScenarioId>;
  out: string | null;
  /** Directory for --cpu-prof profiles of the daemons (profiling slows them down). */
  profileDir: string | null;
  /** Interleaved rounds of baselines + A, B, C. */
  rounds: number;
  /** File size of A, B, C (and H). */
  size: number;
  /** D: the small size, then the sizes compared with it. */
  memSizes: number[];
  memRuns: number;
  files: number;
  fileSize: number;
  fileRuns: number;
  peers: number;
  meshRuns: number;
  /** G: concurrent HTTP clients and requests per measured run. */
  clients: number;
  requests: number;
  loadRuns: number;
  wsClients: number;
  eventRuns: number;
  /** scp/rsync baselines (never in smoke, so CI does not need sshd). */
  ssh: boolean;
}

const MODES: Record<Mode, Omit<Config, 'mode' | 'only' | 'out' | 'profileDir'>> = {
  quick: {
    rounds: 4, size: GIB, memSizes: [64 * MIB, GIB], memRuns: 2, files: 300, fileSize: 4096, fileRuns: 3,
    peers: 30, meshRuns: 3, clients: 50, requests: 3000, loadRuns: 3, wsClients: 50, eventRuns: 2, ssh: true,
  },
  full: {
    rounds: 5, size: GIB, memSizes: [64 * MIB, GIB, 4 * GIB], memRuns: 2, files: 1000, fileSize: 4096, fileRuns: 3,
    peers: 100, meshRuns: 3, clients: 50, requests: 10_000, loadRuns: 3, wsClients: 50, eventRuns: 3, ssh: true,
  },
  smoke: {
    rounds: 1, size: 4 * MIB, memSizes: [MIB, 4 * MIB], memRuns: 1, files: 10, fileSize: 4096, fileRuns: 1,
    peers: 4, meshRuns: 1, clients: 5, requests: 200, loadRuns: 1, wsClients: 5, eventRuns: 1, ssh: false,
  },
};

export const USAGE = `usage: tsx bench/run.ts [--quick | --full | --smoke] [--only=A,B,...] [--out FILE] [--profile=DIR] [--rounds=N]
  --quick       default: 4-5 minutes (1 GiB transfers, 4 rounds; 1 GiB for memory; 30 peers)
  --full        the sizes of issue 4 (1 GiB, 4 GiB for memory, 100 peers); 8-15 minutes
  --smoke       tiny sizes, one run each, no scp: checks the harness itself
  --only=LIST   scenarios to run (A-H); B and C also run A, their reference
  --out FILE    where to write the JSON (default bench/results/latest.json; smoke writes none unless given)
  --profile=DIR run daemons under node --cpu-prof, one profile per thread in DIR/<role>-<n>/
  --rounds=N    interleaved rounds of the transfer scenarios and baselines`;

export function parseArgs(argv: readonly string[]): Config {
  let mode: Mode = 'quick';
  let only = new Set<ScenarioId>(SCENARIOS);
  let out: string | null | undefined;
  let profileDir: string | null = null;
  let rounds: number | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i] ?? fail(`${flag} needs a value`);
    if (flag === '--quick' || flag === '--full' || flag === '--smoke') mode = flag.slice(2) as Mode;
    else if (flag === '--only') {
      const ids = value().toUpperCase().split(',').map((s) => s.trim()).filter(Boolean);
      for (const id of ids) if (!(SCENARIOS as readonly string[]).includes(id)) fail(`unknown scenario ${id}`);
      only = new Set(ids as ScenarioId[]);
    } else if (flag === '--out') out = value();
    else if (flag === '--profile') profileDir = value();
    else if (flag === '--rounds') rounds = Number(value());
    else if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else fail(`unknown argument ${arg}`);
  }
  if (rounds !== null && !(Number.isInteger(rounds) && rounds > 0)) fail('--rounds must be a positive integer');
  const sizes = MODES[mode];
  return {
    mode,
    only,
    out: out ?? (mode === 'smoke' ? null : 'bench/results/latest.json'),
    profileDir,
    ...sizes,
    rounds: rounds ?? sizes.rounds,
  };
}

function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}
