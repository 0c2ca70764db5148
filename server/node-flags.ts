// Node flags the daemon runs with. They must be given on the command line (V8 reads
// them when it sets up the heap, and NODE_OPTIONS refuses them), so every launcher
// passes them: `npm start` (package.json), the benchmark and the tests' spawned
// daemons import this list; tests/unit/node-flags.test.ts keeps package.json in step.
//
// --initial-old-space-size=64: after a daemon has been idle for ~15 s, V8's
// memory-reducing collections shrink its heap to ~21 MB, and a transfer that starts
// later gets a full mark-compact between most scavenges ("external memory
// pressure", 48 per GiB received against 2 in a fresh daemon: ~2 CPU-s per GiB on
// V8's helper threads, A at 1 GiB 0.9x scp instead of 1.2x). With a 64 MB floor for
// the old generation the idle daemon behaves like a fresh one (docs/PERFORMANCE.md).
export const DAEMON_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];
