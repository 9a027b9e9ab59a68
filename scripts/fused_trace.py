#!/usr/bin/env python3
"""The fused decode step's timeline across blocks, from a diagnostic build's trace.

Build with -DMAMBASCOPE_FUSED_TRACE=ON, then on the GPU machine
    MAMBASCOPE_FUSED_TRACE_OUT=trace.bin MAMBASCOPE_BENCH_QUICK=1 \\
        mambascope-bench --models 130m --decode-only
appends the last profiled step's stamps (every block's thread 0: clock64 and globaltimer at fixed
points of each layer; decode_fused.hpp, kFusedTraceStamps) to trace.bin, once per model run.
    scripts/fused_trace.py trace.bin[.gz] [run]
prints, for that run (default: the last), when each phase ends across the blocks, the phases'
median lengths, and what each exchange costs: from the last writer's phase end to the readers'.
Times are ns from the step's first stamp; each block's SM clock is placed on the global timer by
the median offset over its stamps (the global timer alone ticks in 32 ns or coarser steps).
"""
import gzip
import statistics
import struct
import sys

NAMES = ['start', 'normed', 'x rows', 'x_proj partials', 'partials sent', 'z rows', 'B sums in',
         'B done', 'C y in', 'C done']


def read_runs(path):
    try:
        data = (gzip.open if path.endswith('.gz') else open)(path, 'rb').read()
    except OSError as e:
        sys.exit('cannot read the trace %s: %s' % (path, e))
    runs, pos = [], 0
    while pos + 16 <= len(data):
        G, nl, K, cl = struct.unpack_from('4i', data, pos)
        pos += 16
        n = G * (nl + 1) * K * 2
        if min(G, nl, K, cl) <= 0 or pos + 8 * n > len(data):
            sys.exit('%s: run %d is cut short or not a fused-step trace (header %d blocks, %d layers, '
                     '%d stamps)' % (path, len(runs), G, nl, K))
        vals = struct.unpack_from('%dQ' % n, data, pos)
        pos += 8 * n
        runs.append((G, nl, K, cl, vals))
    return runs


def timeline(G, nl, K, vals):
    """t[b][l][k] in ns (None where a stamp was not taken), and the SM clock in GHz."""
    def raw(b, l, k, j):
        return vals[(((b * (nl + 1)) + l) * K + k) * 2 + j]
    taken = [(b, l, k) for b in range(G) for l in range(nl + 1) for k in range(K) if raw(b, l, k, 0)]
    c0 = [raw(0, l, k, 0) for (b, l, k) in taken if b == 0]
    g0 = [raw(0, l, k, 1) for (b, l, k) in taken if b == 0]
    ghz = (max(c0) - min(c0)) / (max(g0) - min(g0))
    gbase = min(raw(b, l, k, 1) for (b, l, k) in taken)
    offs = {}
    for b in range(G):
        mine = [(l, k) for (bb, l, k) in taken if bb == b]
        cb = min(raw(b, l, k, 0) for (l, k) in mine)
        offs[b] = (cb, statistics.median((raw(b, l, k, 1) - gbase) - (raw(b, l, k, 0) - cb) / ghz for (l, k) in mine))
    t = [[[None] * K for _ in range(nl + 1)] for _ in range(G)]
    for (b, l, k) in taken:
        cb, off = offs[b]
        t[b][l][k] = (raw(b, l, k, 0) - cb) / ghz + off
    t0 = min(x for blk in t for lay in blk for x in lay if x is not None)
    for (b, l, k) in taken:
        t[b][l][k] -= t0
    return t, ghz


def stats(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return 'n/a'
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    return 'median %6.0f  p10 %6.0f  p90 %6.0f  (n %d)' % (statistics.median(xs), q(0.1), q(0.9), len(xs))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    runs = read_runs(sys.argv[1])
    if not runs:
        sys.exit('no trace in ' + sys.argv[1])
    pick = sys.argv[2] if len(sys.argv) > 2 else '-1'
    if not pick.lstrip('-').isdigit() or not -len(runs) <= int(pick) < len(runs):
        sys.exit('run %s: the file holds runs 0..%d' % (pick, len(runs) - 1))
    G, nl, K, cl, vals = runs[int(pick)]
    t, ghz = timeline(G, nl, K, vals)
    col = lambda l, k: [t[b][l][k] for b in range(G) if t[b][l][k] is not None]
    print('%d runs in the file; this one: %d blocks, clusters of %d, %d layers, SM clock %.3f GHz'
          % (len(runs), G, cl, nl, ghz))
    print('\nwhen each phase ends (ns from the step start: first block / median / last block)')
    for l in sorted({0, 1, nl // 2, nl - 1}):
        cells = ['%s %.0f/%.0f/%.0f' % (NAMES[k], min(col(l, k)), statistics.median(col(l, k)), max(col(l, k)))
                 for k in range(K) if col(l, k)]
        print('layer %2d: ' % l + ' | '.join(cells))
    f = [(min(col(nl, k)), statistics.median(col(nl, k)), max(col(nl, k))) for k in range(4) if col(nl, k)]
    print('lm_head : ' + ' | '.join('%s %.0f/%.0f/%.0f' % ((n,) + x) for n, x in
                                   zip(['start', 'normed', 'GEMV done', 'lists merged/sent'], f)))
    mid = range(1, nl)
    print('\nmedian phase lengths over blocks and layers 1..%d (ns)' % (nl - 1))
    for k in range(1, K):
        d = [t[b][l][k] - t[b][l][k - 1] for b in range(G) for l in mid
             if t[b][l][k] is not None and t[b][l][k - 1] is not None]
        if d:
            print('  %-16s %s' % (NAMES[k], stats(d)))
    starts = [statistics.median(col(l, 0)) for l in range(nl)]
    print('  layer period     %s' % stats([b - a for a, b in zip(starts, starts[1:])]))
    print('\nexchanges (ns; the last writer\'s phase end to each reader\'s data in)')
    last = lambda l, k: max(col(l, k)) if col(l, k) else None
    firsts = [b for b in range(0, G, cl)] if cl > 1 else []
    rows = [
        ('residual: last C done (l-1) -> normed', [t[b][l][1] - last(l - 1, 9) for b in range(G) for l in mid
                                                   if last(l - 1, 9) is not None]),
        ('x_proj: own z rows done -> B sums in', [t[b][l][6] - t[b][l][5] for b in range(G) for l in mid]),
        ('y: max(last B done, own B done) -> C y in', [t[b][l][8] - max(last(l, 7), t[b][l][7])
                                                      for b in range(G) for l in mid if t[b][l][8] is not None]),
    ]
    if firsts:
        rows.append(('cluster first block: last partials of its cluster -> published',
                     [t[c][l][4] - max(t[b][l][3] for b in range(c, c + cl)) for c in firsts for l in mid]))
        late = [sum(1 for l in mid if max(range(G), key=lambda b: t[b][l][7]) in firsts), len(mid)]
        rows.append(('layers whose last B is a cluster first block: %d of %d' % tuple(late), []))
    for name, xs in rows:
        if name.startswith('layers'):
            print('  ' + name)
        else:
            print('  %-62s %s' % (name, stats(xs) if xs else 'n/a (out_proj by columns: C is not stamped)'))


if __name__ == '__main__':
    main()
