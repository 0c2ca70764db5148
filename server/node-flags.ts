// Node flags and environment the daemon runs with. Both must be there when the process
// starts (V8 reads the flags when it sets up the heap, and NODE_OPTIONS refuses them;
// glibc reads its tunables when the program loads), so every launcher passes them:
// `npm start` (package.json), the benchmark and the tests' spawned daemons import these
// lists; tests/unit/node-flags.test.ts keeps package.json in step.
//
// --initial-old-space-size=64: after a daemon has been idle for ~15 s, V8's
// memory-reducing collections shrink its heap to ~21 MB, and a transfer that starts
// later gets a full mark-compact between most scavenges ("external memory
// pressure", 48 per GiB received against 2 in a fresh daemon: ~2 CPU-s per GiB on
// V8's helper threads, A at 1 GiB 0.9x scp instead of 1.2x). With a 64 MB floor for
// the old generation the idle daemon behaves like a fresh one (docs/PERFORMANCE-HISTORY.md).
export const DAEMON_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];

// GLIBC_TUNABLES glibc.malloc.trim_threshold=32 MiB: Node's HTTP parser copies every
// piece of a request body (up to 64 KiB) into a new malloc block, freed only when V8
// collects its Buffer, ~12 MiB at a time. With glibc's default threshold (128 KiB, raised
// only by chance when a large mmapped block is freed) each such batch is handed back to
// the kernel (brk) and the next pieces fault fresh pages in: 20,000-130,000 page faults
// per GiB uploaded, a third of the sending daemon's main thread on a paravirtualised VM
// (docs/PERFORMANCE-HISTORY.md, 2026-12-05). Keeping up to 32 MiB of freed heap stops the
// cycle; allocations of 128 KiB and more are still mmapped and returned at once.
//
// glibc.malloc.arena_max=1: the threshold holds for every malloc arena, and glibc gives
// each thread that allocates (V8's helpers, the hash thread, libuv's pool) an arena of
// its own, so alone it kept ~15-20 MB more resident per daemon (peak 183-193 MB against
// 169-174 in A). One arena for all threads keeps the peaks below the untuned ones
// (167 / 136 MB receiving / sending) at no cost measured in A or C: the threads other
// than the main one allocate little through malloc, mostly in tcache-sized pieces.
export const MALLOC_TUNABLES = 'glibc.malloc.trim_threshold=33554432:glibc.malloc.arena_max=1';

/** The environment for a daemon process: `base` with MALLOC_TUNABLES before any tunables it sets (the later win). */
export function daemonEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const own = base.GLIBC_TUNABLES;
  return { ...base, GLIBC_TUNABLES: own ? `${MALLOC_TUNABLES}:${own}` : MALLOC_TUNABLES };
}

/**
 * What of the above this process started without (empty when launched as `npm start`
 * does). A daemon run as `node dist/server/main.js` works, but costs more CPU and memory
 * per transfer; main.ts says so once at startup rather than leave the user guessing.
 */
export function missingTuning(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): string[] {
  const missing = DAEMON_NODE_FLAGS.filter((flag) => !execArgv.includes(flag));
  const tunables = (env.GLIBC_TUNABLES ?? '').split(':');
  for (const t of MALLOC_TUNABLES.split(':')) if (!tunables.includes(t)) missing.push(`GLIBC_TUNABLES=${t}`);
  return missing;
}
