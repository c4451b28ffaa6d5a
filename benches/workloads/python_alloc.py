"""python_alloc: an allocation-heavy python3 program (the "real program").

    python3 python_alloc.py [scale]

Deterministic (random.Random with a fixed seed; nothing depends on string
hashing or addresses), standard library only. Each round:
  - builds an index of records: a dict from string keys to small objects
    (instances with a __dict__), each holding a list, a tuple and a string;
  - runs a text pass: formats lines, splits them into words, counts words in
    a dict, joins and replaces strings;
  - sorts and filters the records, builds nested dict/list documents (as a
    JSON encoder's input would be), serialises them by hand, then drops half
    of the index and rebuilds it, so old and new objects are interleaved;
  - keeps a bounded history of some results across rounds (longer lifetimes).
Prints "checksum: <hex>" (a CRC-32 of the results), like the C workloads.

The runner starts it with PYTHONMALLOC=malloc so that every object
allocation goes to the malloc under test (with Python's default allocator,
pymalloc serves objects up to 512 bytes from its own arenas). When the
environment variable WORKLOAD_PROBE is set, prints to stderr which shared
object malloc, free, calloc and realloc bind to in this process.
"""

import os
import random
import sys
import zlib

WORDS = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho",
    "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "slab", "chunk",
    "span", "magazine", "class", "arena", "page", "block",
]


class Record:
    def __init__(self, key, rank, tags, payload):
        self.key = key
        self.rank = rank
        self.tags = tags
        self.payload = payload
        self.children = []


def probe():
    """Prints which shared object the C-level malloc family binds to.

    Same rule as the C workloads (workload.h, wl_symbol_object): the first
    object after the executable, in link-map order (LD_PRELOADed objects
    come first), that defines the symbol itself. The interpreter's own
    entry is skipped: in a non-PIE executable, such as Debian's python3,
    dlsym returns the PLT stub of an imported function.
    """
    import ctypes

    class LinkMap(ctypes.Structure):
        pass

    LinkMap._fields_ = [
        ("l_addr", ctypes.c_void_p),
        ("l_name", ctypes.c_char_p),
        ("l_ld", ctypes.c_void_p),
        ("l_next", ctypes.POINTER(LinkMap)),
        ("l_prev", ctypes.POINTER(LinkMap)),
    ]

    class DlInfo(ctypes.Structure):
        _fields_ = [
            ("dli_fname", ctypes.c_char_p),
            ("dli_fbase", ctypes.c_void_p),
            ("dli_sname", ctypes.c_char_p),
            ("dli_saddr", ctypes.c_void_p),
        ]

    rtld_lazy, rtld_noload, rtld_di_linkmap = 0x1, 0x4, 2
    libc = ctypes.CDLL(None)
    libc.dlopen.restype = ctypes.c_void_p
    libc.dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.dlsym.restype = ctypes.c_void_p
    libc.dlsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    libc.dlclose.argtypes = [ctypes.c_void_p]
    libc.dlinfo.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]

    head = ctypes.POINTER(LinkMap)()
    if libc.dlinfo(libc.dlopen(None, rtld_lazy), rtld_di_linkmap, ctypes.byref(head)) != 0:
        head = None

    def defining_object(name):
        node = head.contents.l_next if head else None
        while node:
            obj = node.contents.l_name
            node_next = node.contents.l_next
            if obj:
                handle = libc.dlopen(obj, rtld_lazy | rtld_noload)
                if handle:
                    sym = libc.dlsym(handle, name.encode())
                    info = DlInfo()
                    own = bool(sym) and libc.dladdr(sym, ctypes.byref(info)) != 0 \
                        and info.dli_fname == obj
                    libc.dlclose(handle)
                    if own:
                        return obj.decode()
            node = node_next
        return "?"

    out = [f"{name}={defining_object(name)}" for name in ("malloc", "free", "calloc", "realloc")]
    print("probe: " + " ".join(out), file=sys.stderr)


def build_index(rng, round_no, count):
    index = {}
    for i in range(count):
        key = f"rec-{round_no}-{i}-{rng.choice(WORDS)}"
        tags = tuple(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        payload = [rng.randint(0, 1 << 20) for _ in range(rng.randint(2, 12))]
        index[key] = Record(key, rng.random(), tags, payload)
    return index


def text_pass(rng, lines):
    counts = {}
    out = []
    for i in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 16))]
        line = " ".join(words) + f" #{i}"
        for w in line.replace("#", " ").split():
            counts[w] = counts.get(w, 0) + 1
        if i % 7 == 0:
            out.append(line.upper().replace("A", "4"))
    blob = "\n".join(out)
    return counts, blob


def document(rec):
    return {
        "key": rec.key,
        "rank": round(rec.rank, 6),
        "tags": list(rec.tags),
        "payload": {"sum": sum(rec.payload), "items": rec.payload[:4]},
        "children": [c.key for c in rec.children],
    }


def serialise(value):
    if isinstance(value, dict):
        return "{" + ",".join(f'"{k}":{serialise(v)}' for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(serialise(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value + '"'
    return repr(value)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    if not 0 < scale <= 1000:
        sys.exit(f"python_alloc: bad scale {sys.argv[1]!r}")
    if os.environ.get("WORKLOAD_PROBE", "0") not in ("", "0"):
        probe()

    rng = random.Random(0x5117)
    rounds = max(1, int(round(12 * scale)))
    records = 6000
    crc = 0
    history = []

    for r in range(rounds):
        index = build_index(rng, r, records)
        keys = list(index)
        for key in keys[::3]:
            parent = index[key]
            for _ in range(rng.randint(0, 3)):
                parent.children.append(index[keys[rng.randrange(len(keys))]])

        counts, blob = text_pass(rng, 4000)
        crc = zlib.crc32(blob.encode(), crc)
        crc = zlib.crc32(repr(sorted(counts.items())).encode(), crc)

        ranked = sorted(index.values(), key=lambda rec: (rec.rank, rec.key))
        top = [rec for rec in ranked if len(rec.tags) > 2][:500]
        docs = [document(rec) for rec in top]
        text = serialise(docs)
        crc = zlib.crc32(text.encode(), crc)

        # Drop half of the index and refill it, interleaving lifetimes.
        for key in keys[::2]:
            del index[key]
        refill = build_index(rng, r + 1000, records // 2)
        index.update(refill)
        total = 0
        for rec in index.values():
            total += sum(rec.payload) + len(rec.children)
        crc = zlib.crc32(str(total).encode(), crc)

        history.append((r, text[:2000], [d["key"] for d in docs[:100]]))
        if len(history) > 4:
            history.pop(0)
        del index, refill, keys, ranked, top, docs, text, counts, blob

    for r, text, keys in history:
        crc = zlib.crc32(f"{r}:{len(text)}:{','.join(keys)}".encode(), crc)
    print(f"rounds: {rounds}")
    print(f"checksum: {crc:08x}")


if __name__ == "__main__":
    main()
