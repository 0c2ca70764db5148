import { describe, expect, it } from 'vitest';
import { EventBus } from '../../../server/events/bus.js';

const removed = (port: number) => ({ port, id: 'x' });

describe('EventBus', () => {
  it('numbers events from 1 and fans them out', () => {
    const bus = new EventBus();
    const seen: number[] = [];
    const off = bus.subscribe((e) => seen.push(e.seq));
    const e = bus.emit('peer.removed', removed(1));
    bus.emit('peer.removed', removed(2));
    off();
    bus.emit('peer.removed', removed(3));
    expect(e).toMatchObject({ seq: 1, type: 'peer.removed', data: { port: 1 } });
    expect(new Date(e.time).toISOString()).toBe(e.time);
    expect(seen).toEqual([1, 2]);
    expect(bus.lastSeq).toBe(3);
  });

  it('replays events after since', () => {
    const bus = new EventBus();
    for (let i = 1; i <= 5; i++) bus.emit('peer.removed', removed(i));
    const replay = bus.since(3);
    expect(replay.kind).toBe('ok');
    expect(replay.kind === 'ok' && replay.events.map((e) => e.seq)).toEqual([4, 5]);
    const all = bus.since(0);
    expect(all.kind === 'ok' && all.events.length).toBe(5);
    const none = bus.since(5);
    expect(none.kind === 'ok' && none.events.length).toBe(0);
  });

  it('reports a gap when asked for events that fell out of the ring', () => {
    const bus = new EventBus(3);
    for (let i = 1; i <= 10; i++) bus.emit('peer.removed', removed(i));
    const replay = bus.since(2);
    expect(replay).toMatchObject({ kind: 'gap', from: 3, to: 7 });
    expect(replay.kind === 'gap' && replay.events.map((e) => e.seq)).toEqual([8, 9, 10]);
    expect(bus.since(7).kind).toBe('ok');
  });

  it('asks for a reset when since is ahead of this process (a restarted daemon)', () => {
    const bus = new EventBus();
    bus.emit('peer.removed', removed(1));
    expect(bus.since(99)).toEqual({ kind: 'reset' });
  });
});
