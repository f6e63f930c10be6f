#!/usr/bin/env python3
"""seesaw2_model.py — an executable model of v6's synchronisation (kernels/decode_seesaw2.cu), for
checking its protocol on a machine without a GPU.

Each warpgroup is a sequential program transcribed from s2_body (one request or several, N tiles
each); the model runs the two against each other under random interleavings, with TMA loads and
wgmma groups completing at random later moments, and reports:
  - deadlock: no warpgroup can move and nothing is in flight;
  - a named barrier reached twice by one warpgroup before the other side arrived;
  - an mbarrier armed twice in one phase, or waited for a phase that can never come;
  - a K chunk refilled while a wgmma reading its old tile is in flight, or before every read the
    old tile needs (QK^T by its owner, PV_L by WG0, PV_R by WG1) is done;
  - a wgmma reading a chunk that does not hold its tile (not landed, or already overwritten) or that
    its warpgroup has not waited for (directly, or through a barrier after the owner's wait);
  - a P tile, row-maxima array or key mask written while its reader has not finished with the last
    version, or read before the version it needs was written.
Then a self-test: each of MUTATIONS (a known protocol bug put into the transcription) must be
reported. Scope: d_qk 576 (nine chunks), one commit group per chunk (MLA_SS2_CHUNK_WAIT = 1); the
V-row zeroing and the epilogue are not modelled (CTA barriers stand for them).
Run: python3 tools/seesaw2_model.py [runs]   (exit status 1 on a violation, with a trace, or on a
mutation not reported). tests/python/test_seesaw2_model.py runs both. The transcription has to
follow the kernel by hand: change both together.
"""
import random
import sys

CH = list(range(9))            # d_qk 576: chunks 0-8
VL, VR = [0, 1, 2, 3], [4, 5, 6, 7]


class Violation(Exception):
    pass


# Protocol variants of the kernel's build switches (each must be clean too):
#   "early_r1": MLA_SS2_EARLY_R1=1, WG0 waits for PV_L(j1) and refills stage 1's chunks 0-3 before its QK^T
VARIANT = set()
# Mutations (the self-test): known protocol bugs the model must report
MUT = set()
MUTATIONS = {
    "refill-before-pv-wait": "WG0 refills stage 0's chunks 0-3 before waiting for its PV_L on them",
    "v0r-refill-early": "WG1 refills stage 0's chunks 4-8 after wait_group 1 (its PV on sP0 in flight)",
    "wait-le-5": "WG0 refills stage 1's chunks 0-3 after wait_group 5 (PV_L(j1) may be in flight)",
    "parity": "WG1 waits the parity of the tile before",
    "no-pv-arrive": "WG1 skips its arrive on PV",
    "no-m1-sync": "WG0 reads sM1 without its sync on M1",
    "no-v0r-refill": "WG1 never refills stage 0's chunks 4-8",
    "sm1-late": "WG1 arrives on M1 before writing sM1",
    "kmask-early": "WG0 refills stage 0's chunks 0-3 (and its key mask) before its softmax of the tile there",
}


class World:
    def __init__(self, rng):
        self.rng = rng
        # named barriers: id -> set of warpgroups arrived in the current instance
        self.nbar = {}
        # mbarriers: (stage, chunk) -> completed phases, armed in the current phase
        self.ph = {(s, c): 0 for s in (0, 1) for c in CH}
        self.armed = {k: False for k in self.ph}
        self.inflight_tma = []   # (stage, chunk, tile)
        # smem chunk content: (stage, chunk) -> tile id (landed), None
        self.content = {k: None for k in self.ph}
        # reads still owed by the tile in a chunk: (stage, chunk) -> set of reader tags
        self.owed = {k: set() for k in self.ph}
        # wgmma groups: wg -> list of groups (each a list of reads); reads = (kind, key, ver)
        self.groups = {0: [], 1: []}
        # what each warpgroup has observed: tile landed in (stage, chunk) via its own wait
        self.seen = {0: {}, 1: {}}
        # small buffers: name -> (version written, readers pending for that version)
        self.buf_ver = {"sP0": None, "sP1": None, "sM0": None, "sM1": None}
        self.trace = []

    def log(self, s):
        self.trace.append(s)
        if len(self.trace) > 400:
            self.trace.pop(0)


def program(wg, W, reqs):
    """The instruction stream of warpgroup wg, as generator of operations (tuples)."""
    uph = 0
    tile_base = 0          # unique tile ids across requests
    for N in reqs:
        if N > 0:
            def T(j):
                return tile_base + j
            # prologue (thread 0 issues, both warpgroups then pass a CTA barrier)
            if wg == 0:
                yield ("tma", 0, CH, T(0))
                if N > 1:
                    yield ("tma", 1, [4, 5, 6, 7, 8], T(1))
                    yield ("tma", 1, [0, 1, 2, 3], T(1))
            yield ("cta_sync",)
            if wg == 0:
                ph = uph & 1
                yield ("qk", 0, CH, T(0), ph)
                yield ("wait", 0)
            for j0 in range(0, N, 2):
                j1 = j0 + 1
                has1, more0, more1 = j1 < N, j0 + 2 < N, j1 + 2 < N
                if wg == 0:
                    if "kmask-early" in MUT and more0:
                        yield ("tma", 0, [0, 1, 2, 3], T(j0 + 2))
                    yield ("read", "S", T(j0))           # softmax(j0) on its own S
                    yield ("write", "sM0", T(j0))
                    yield ("arrive", "M0")
                    yield ("pv", 0, VL, T(j0), None)     # O_L += P0 V_L(j0), RS
                    if "refill-before-pv-wait" in MUT and more0:
                        yield ("tma", 0, [0, 1, 2, 3], T(j0 + 2))
                    yield ("wait", 0)
                    if "no-m1-sync" not in MUT:
                        yield ("sync", "M1")
                    if more0 and "refill-before-pv-wait" not in MUT and "kmask-early" not in MUT:
                        yield ("tma", 0, [0, 1, 2, 3], T(j0 + 2))
                    yield ("readbuf", "sM1", T(j1) if has1 else T(j0))
                    yield ("write", "sP0", T(j0))
                    yield ("arrive", "P0")
                    if has1:
                        yield ("sync", "PV")
                        yield ("pv", 0, VL, T(j1), ("sP1", T(j1)))
                    if more0:
                        ph = (uph ^ ((j0 >> 1) + 1)) & 1
                        if "early_r1" in VARIANT:
                            yield ("wait", 0)
                            if more1:
                                yield ("tma", 1, [0, 1, 2, 3], T(j1 + 2))
                        yield ("qk", 0, [0, 1, 2, 3], T(j0 + 2), ph)
                        if more1 and "early_r1" not in VARIANT:
                            yield ("wait_le", 5 if "wait-le-5" in MUT else 4)  # PV_L(j1) done (4 QK groups may stay)
                            yield ("tma", 1, [0, 1, 2, 3], T(j1 + 2))
                        yield ("qk", 0, [4, 5, 6, 7, 8], T(j0 + 2), ph)
                    yield ("wait", 0)
                else:
                    if has1:
                        ph = ((uph >> 1) ^ (j1 >> 1) ^ (1 if "parity" in MUT and j1 > 1 else 0)) & 1
                        yield ("qk", 1, [4, 5, 6, 7, 8], T(j1), ph)
                        yield ("qk", 1, [0, 1, 2, 3], T(j1), ph)
                        yield ("wait", 0)
                    yield ("sync", "M0")
                    yield ("readbuf", "sM0", T(j0))
                    if has1:
                        yield ("read", "S", T(j1))
                    if "sm1-late" in MUT:
                        yield ("arrive", "M1")
                    yield ("write", "sM1", T(j1) if has1 else T(j0))
                    if "sm1-late" not in MUT:
                        yield ("arrive", "M1")
                    if has1:
                        yield ("write", "sP1", T(j1))
                        yield ("pv", 1, VR, T(j1), None)  # O_R += P1 V_R(j1), RS
                    yield ("sync", "P0")
                    yield ("pv", 1, VR, T(j0), ("sP0", T(j0)))
                    if has1 and "no-pv-arrive" not in MUT:
                        yield ("arrive", "PV")
                    if more1:
                        yield ("wait_le", 1)
                        yield ("tma", 1, [4, 5, 6, 7, 8], T(j1 + 2))
                    if "v0r-refill-early" in MUT and more0:
                        yield ("tma", 0, [4, 5, 6, 7, 8], T(j0 + 2))
                    yield ("wait", 0)
                    if more0 and "v0r-refill-early" not in MUT and "no-v0r-refill" not in MUT:
                        yield ("tma", 0, [4, 5, 6, 7, 8], T(j0 + 2))
            uph ^= (((N + 1) >> 1) & 1) | (((N >> 1) & 1) << 1)
        tile_base += max(N, 0)
        yield ("cta_sync",)     # row-sum merge + epilogue barriers
        yield ("cta_sync",)
    yield ("done",)


def expected_reads(stage, chunk):
    """Reads a tile in (stage, chunk) owes: QK^T by its owner (the warpgroup of the stage: tile j of a
    request lives in stage j & 1), PV_L / PV_R for V chunks."""
    owed = {("qk", stage)}
    if chunk in VL:
        owed.add(("pv", 0))
    if chunk in VR:
        owed.add(("pv", 1))
    return owed


def run(reqs, seed):
    W = World(random.Random(seed))
    try:
        return run_world(W, reqs)
    except Violation as e:
        e.trace = W.trace
        raise


def run_world(W, reqs):
    rng = W.rng
    progs = {0: program(0, W, reqs), 1: program(1, W, reqs)}
    cur = {0: next(progs[0]), 1: next(progs[1])}
    finished = {0: False, 1: False}
    cta_waiting = set()
    tile_stage = {}
    base = 0
    for N in reqs:
        for j in range(max(N, 0)):
            tile_stage[base + j] = j % 2
        base += max(N, 0)
    sync_waiting = {}   # wg -> bar id

    def fail(msg):
        W.log("VIOLATION: " + msg)
        raise Violation(msg)

    def complete_group(wg):
        g = W.groups[wg].pop(0)
        for (kind, key, t) in g:
            if kind == "chunk":
                stage, c, reader = key
                W.owed[(stage, c)].discard(reader)
        W.log(f"WG{wg} wgmma group done")

    def write_buf(wg, name, ver):
        """a new version of a small buffer (P tile, maxima, key mask): the last one must have been read"""
        if pending_reads.get(name):
            fail(f"WG{wg} overwrites {name} (v{W.buf_ver.get(name)}) before it was read")
        W.buf_ver[name] = ver
        pending_reads[name] = True
        W.log(f"WG{wg} writes {name} v{ver}")

    def try_step(wg):
        op = cur[wg]
        k = op[0]
        if k == "done":
            if finished[wg]:
                return False
            finished[wg] = True
            return True
        if k == "cta_sync":
            cta_waiting.add(wg)
            if cta_waiting == {0, 1}:
                cta_waiting.clear()
                W.log("CTA barrier")
                for w in (0, 1):
                    cur[w] = next(progs[w])
                return True
            return False
        if k in ("arrive", "sync"):
            b = op[1]
            if k == "sync" and sync_waiting.get(wg) == b:
                return False          # still waiting for the other side
            arr = W.nbar.setdefault(b, set())
            if wg in arr:
                fail(f"WG{wg} reaches {b} twice in one instance")
            arr.add(wg)
            W.log(f"WG{wg} {k} {b}")
            if arr == {0, 1}:         # the instance completes: release a waiting sync
                W.nbar[b] = set()
                for w, bb in list(sync_waiting.items()):
                    if bb == b:
                        del sync_waiting[w]
                        cur[w] = next(progs[w])
                cur[wg] = next(progs[wg])
            elif k == "arrive":
                cur[wg] = next(progs[wg])
            else:
                sync_waiting[wg] = b
            return True
        if k == "tma":
            _, stage, chunks, t = op
            for c in chunks:
                key = (stage, c)
                if W.armed[key]:
                    fail(f"WG{wg} arms {key} twice in one phase (tile {t})")
                for w in (0, 1):
                    for g in W.groups[w]:
                        for (kind, kk, tt) in g:
                            if kind == "chunk" and kk[:2] == key:
                                fail(f"WG{wg} refills {key} with tile {t} while WG{w}'s wgmma reads tile {tt}")
                if W.owed[key]:
                    fail(f"WG{wg} refills {key} with tile {t}: tile {W.content[key]} still owes {W.owed[key]}")
                if tile_stage[t] != stage:
                    fail(f"tile {t} loaded into stage {stage}")
                W.armed[key] = True
                W.content[key] = None
                W.inflight_tma.append((stage, c, t))
            if 0 in chunks:  # the thread arming chunks 0-3 writes the tile's key mask first
                write_buf(wg, "kmask%d" % stage, t)
            W.log(f"WG{wg} TMA tile {t} -> stage {stage} chunks {chunks}")
            cur[wg] = next(progs[wg])
            return True
        if k == "qk":
            _, stage, chunks, t, ph = op
            i = qk_pos.get(wg, 0)
            c = chunks[i]
            key = (stage, c)
            need = sum(1 for tt, st in tile_stage.items() if st == stage and tt < t)  # the tile's phase
            if need % 2 != ph:
                fail(f"WG{wg} waits parity {ph} for tile {t} in {key}, whose phase is {need}")
            if W.ph[key] <= need:
                return False      # mbar_wait blocks: not landed yet
            if W.content[key] != t:
                fail(f"WG{wg} QK^T reads {key} for tile {t}, holds {W.content[key]}")
            W.seen[wg][key] = t
            W.groups[wg].append([("chunk", (stage, c, ("qk", wg)), t)])   # one commit group per chunk
            W.log(f"WG{wg} QK^T tile {t} chunk {c}")
            if i + 1 < len(chunks):
                qk_pos[wg] = i + 1
            else:
                qk_pos[wg] = 0
                cur[wg] = next(progs[wg])
            return True
        if k == "pv":
            _, h, chunks, t, pbuf = op
            stage = tile_stage[t]
            reads = []
            for c in chunks:
                key = (stage, c)
                if W.content[key] != t:
                    fail(f"WG{wg} PV reads {key} for tile {t}, holds {W.content[key]}")
                if stage != wg and W.seen[stage].get(key) != t:
                    fail(f"WG{wg} PV on {key} tile {t} before its owner waited for it")
                reads.append(("chunk", (stage, c, ("pv", wg)), t))
            if pbuf:
                name, ver = pbuf
                if W.buf_ver[name] != ver:
                    fail(f"WG{wg} PV reads {name} version {W.buf_ver[name]}, needs {ver}")
                reads.append(("buf", name, ver))
            W.groups[wg].append(reads)
            W.log(f"WG{wg} PV tile {t} {'V_L' if h == 0 else 'V_R'}" + (f" P from {pbuf[0]}" if pbuf else ""))
            cur[wg] = next(progs[wg])
            return True
        if k in ("wait", "wait_le"):
            n = op[1]
            if len(W.groups[wg]) > n:
                return False   # the async engine completes groups
            cur[wg] = next(progs[wg])
            return True
        if k == "read":  # the softmax of tile t by its owner: its S (waited) and the stage's key mask
            t = op[2]
            km = "kmask%d" % tile_stage[t]
            if W.buf_ver.get(km) != t:
                fail(f"WG{wg} softmax of tile {t} reads {km} of tile {W.buf_ver.get(km)}")
            pending_reads[km] = False
            cur[wg] = next(progs[wg])
            return True
        if k == "readbuf":
            name, ver = op[1], op[2]
            if W.buf_ver[name] != ver:
                fail(f"WG{wg} reads {name} version {W.buf_ver[name]}, needs {ver}")
            cur[wg] = next(progs[wg])
            return True
        if k == "write":
            name, ver = op[1], op[2]
            if name in ("sP0", "sP1"):
                for w in (0, 1):
                    for g in W.groups[w]:
                        for (kind, kk, tt) in g:
                            if kind == "buf" and kk == name:
                                fail(f"WG{wg} writes {name} v{ver} while WG{w}'s PV reads v{tt}")
            write_buf(wg, name, ver)
            cur[wg] = next(progs[wg])
            return True
        raise RuntimeError(op)

    qk_pos = {}
    pending_reads = {}
    # reads clear the pending flag: sM0 by WG1, sM1 by WG0, sP0 by WG1's PV, sP1 by WG0's PV
    orig_try = try_step

    def step(wg):
        op = cur[wg]
        r = orig_try(wg)
        if r:
            if op[0] == "readbuf":
                pending_reads[op[1]] = False
            if op[0] == "pv" and op[4]:
                pending_reads[op[4][0]] = False
        return r

    # owed reads: set when a tile lands
    steps = 0
    while True:
        steps += 1
        if steps > 200000:
            raise Violation("no termination")
        if finished[0] and finished[1]:
            break
        choices = []
        for wg in (0, 1):
            if not finished[wg]:
                choices.append(("wg", wg))
        if W.inflight_tma:
            choices.append(("tma",))
        for wg in (0, 1):
            if W.groups[wg]:
                choices.append(("grp", wg))
        rng.shuffle(choices)
        moved = False
        for ch in choices:
            if ch[0] == "wg":
                if step(ch[1]):
                    moved = True
                    break
            elif ch[0] == "tma":
                i = rng.randrange(len(W.inflight_tma))
                stage, c, t = W.inflight_tma.pop(i)
                key = (stage, c)
                W.content[key] = t
                W.owed[key] = expected_reads(stage, c)
                W.armed[key] = False
                W.ph[key] += 1
                W.log(f"TMA landed tile {t} in {key}")
                moved = True
                break
            elif ch[0] == "grp":
                complete_group(ch[1])
                moved = True
                break
        if not moved:
            W.log(f"stuck: WG0 at {cur[0]}, WG1 at {cur[1]}, sync waits {sync_waiting}, CTA {cta_waiting}")
            raise Violation("deadlock")
    # every loaded tile's owed reads must be done at the end
    for key, o in W.owed.items():
        if o:
            raise Violation(f"tile {W.content[key]} in {key} never read by {o}")
    return W


SHAPES = [[1], [2], [3], [4], [5], [8], [9], [1, 2], [2, 3, 1], [5, 0, 4], [7, 6], [3, 3, 3]]


def check(runs, shapes=SHAPES):
    """(number of runs, first violation as (requests, seed, exception) or None)"""
    n = 0
    for reqs in shapes:
        for seed in range(runs):
            try:
                run(reqs, seed)
            except Violation as e:
                return n, (reqs, seed, e)
            n += 1
    return n, None


def self_test(runs):
    """every mutation must be reported; returns the names of those that were not"""
    missed = []
    for name in MUTATIONS:
        MUT.clear()
        MUT.add(name)
        _, v = check(runs)
        if v is None:
            missed.append(name)
    MUT.clear()
    return missed


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    for variant in ([], ["early_r1"]):
        VARIANT.clear()
        VARIANT.update(variant)
        n, v = check(runs)
        if v:
            reqs, seed, e = v
            print(f"variant {variant}, requests {reqs}, seed {seed}: {e}")
            print("\n".join(e.trace[-60:]))
            return 1
        print(f"seesaw2 protocol model {variant or '(default)'}: {n} runs over {len(SHAPES)} request shapes, "
              "no violation")
    VARIANT.clear()
    missed = self_test(min(runs, 60))
    for name in MUTATIONS:
        print(f"  mutation {name} ({MUTATIONS[name]}): {'NOT caught' if name in missed else 'caught'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
