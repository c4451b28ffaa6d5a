"""An allocation-heavy, deterministic Python workload.

tests/programs.rs runs it with and without LD_PRELOAD=libslitter.so (both
with PYTHONMALLOC=malloc, so every Python object goes through malloc, and
PYTHONHASHSEED=0) and requires identical output. Each section prints a line
of sizes and digests; nothing depends on addresses, time or hash order.
"""

import collections
import hashlib
import json
import random
import sys


def digest(data):
    if not isinstance(data, (bytes, bytearray)):
        data = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:16]


rng = random.Random(20240601)
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def word(low=1, high=24):
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(low, high)))


# Dicts: many string keys with list values; deletions; rebuilds.
table = {}
for i in range(150_000):
    table[f"k{i:06d}-{rng.randrange(1_000_000)}"] = [i, str(i), i * 0.5]
print("dict", len(table), digest(sorted(table)[:2000]))
for key in list(table)[::2]:
    del table[key]
table.update({key + "x": value[::-1] for key, value in list(table.items())[:20_000]})
print("dict after deletes", len(table), digest(sorted(table.items())[-2000:]))
del table

# Lists: growth, sorting, slicing, nested lists.
numbers = [rng.random() for _ in range(200_000)]
numbers.sort()
nested = [[j * k for j in range(k % 50)] for k in range(40_000)]
flat = [x for row in nested for x in row]
print("lists", len(numbers), round(sum(numbers), 6), len(flat), sum(flat) % 1_000_003)
del numbers, nested, flat

# Strings: building, joining, splitting, replacing, formatting.
words = [word() for _ in range(60_000)]
text = " ".join(words)
shouted = text.replace("a", "AA").upper()
pieces = shouted.split()
formatted = "\n".join(f"{i:>8}|{w:<30}|{len(w):04d}" for i, w in enumerate(words[:20_000]))
grown = ""
for w in words[:20_000]:
    grown += w
print("strings", len(text), len(shouted), len(pieces), len(grown),
      digest(shouted.encode()), digest(formatted.encode()))

# JSON round trip of a nested document.
document = {
    "items": [
        {
            "id": i,
            "name": w,
            "tags": [w[:3], w[-3:], str(len(w))],
            "nested": {"square": i * i, "text": str(i) * (i % 7), "flag": i % 3 == 0},
        }
        for i, w in enumerate(words[:30_000])
    ],
    "meta": {"count": 30_000, "source": "alloc_heavy"},
}
encoded = json.dumps(document, sort_keys=True)
decoded = json.loads(encoded)
assert decoded == document
print("json", len(encoded), digest(encoded.encode()), len(decoded["items"]))
del document, decoded, encoded

# bytes and bytearray growth (realloc of ever larger buffers).
buffer = bytearray()
for i in range(200_000):
    buffer += i.to_bytes(4, "little")
blob = bytes(buffer) * 3
print("bytes", len(buffer), len(blob), digest(buffer), digest(blob[::7]))
del buffer, blob

# Counters, sets, tuples and objects with cycles.
counts = collections.Counter(w[:2] for w in words)
print("counter", len(counts), sorted(counts.most_common(5), key=lambda kv: (-kv[1], kv[0])))
unique = sorted(set(words))
print("set", len(unique), digest(unique[:1000]))


class Node:
    def __init__(self, value):
        self.value = value
        self.children = []
        self.parent = None


root = Node(0)
nodes = [root]
for i in range(1, 100_000):
    node = Node(i)
    parent = nodes[rng.randrange(len(nodes))]
    node.parent = parent
    parent.children.append(node)
    nodes.append(node)
depth = 0
for node in nodes[-1000:]:
    d = 0
    while node.parent is not None:
        node = node.parent
        d += 1
    depth = max(depth, d)
print("tree", len(nodes), depth, sum(len(n.children) for n in nodes))
del nodes, root

# Large lists that grow and shrink (large-block realloc).
big = []
for i in range(1_500_000):
    big.append(i)
while len(big) > 1000:
    del big[len(big) // 2:]
print("big", len(big), sum(big))

sys.stdout.flush()
print("alloc_heavy: ok")
