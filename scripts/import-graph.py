#!/usr/bin/env python3
"""The import graph of src/: one node per file, an edge for every `crate::a::b` / `super::x`
path that names another file's module (comments and unit tests left out). Prints the import
cycles (strongly connected components of more than one file).

    scripts/import-graph.py [SRC] [--edges] [--check]

--check (what `make test` runs) fails when a cycle spans files of more than one top-level
module: features import the shared core, never each other in circles. A regex reading, not a
compiler's: it sees every path written out, which is what a reader follows."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)[:-3]
            parts = rel.split(os.sep)
            if parts[-1] in ('mod', 'lib', 'main'):
                parts = parts[:-1]
            files[tuple(parts)] = p
def resolve(path):
    # longest prefix that is a file module
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in files:
            return tuple(path[:n])
    return None
edges = {m: set() for m in files}
for mod, p in files.items():
    src = open(p).read()
    src = re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*', '', src, flags=re.S)  # drop unit tests
    src = re.sub(r'//[^\n]*', '', src)  # drop comments (doc links are not imports)
    is_dir_mod = os.path.basename(p) in ('mod.rs', 'lib.rs', 'main.rs')
    here = list(mod) if is_dir_mod else list(mod[:-1])
    for m in re.finditer(r'\bcrate((?:::\w+)+)', src):
        path = m.group(1).split('::')[1:]
        t = resolve(path)
        if t and t != mod and t != ():
            edges[mod].add(t)
    for m in re.finditer(r'\bsuper((?:::\w+)+)', src):
        path = here[:-1] + m.group(1).split('::')[1:] if not is_dir_mod else here[:-1] + m.group(1).split('::')[1:]
        base = list(mod[:-1]) if not is_dir_mod else list(mod[:-1])
        path = base + m.group(1).split('::')[1:]
        t = resolve(path)
        if t and t != mod and t != ():
            edges[mod].add(t)
    # `use crate::{a, b::c}` groups
    for m in re.finditer(r'use crate::\{([^;]*)\};', src, flags=re.S):
        for item in re.split(r',\s*', m.group(1)):
            item = item.strip()
            name = re.match(r'(\w+(?:::\w+)*)', item)
            if name:
                t = resolve(name.group(1).split('::'))
                if t and t != mod and t != ():
                    edges[mod].add(t)
def cycles_of(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]
    def strong(v):
        index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1:
                found.append(comp)
    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            strong(v)
    return found
name = lambda m: '/'.join(m) or 'lib'
cycles = cycles_of(edges)
print(f"{len(files)} files, {sum(len(e) for e in edges.values())} edges, {len(cycles)} cycle(s)")
for c in sorted(cycles, key=len, reverse=True):
    print(f"  cycle of {len(c)}: " + ', '.join(sorted(name(m) for m in c)))
if '--edges' in sys.argv:
    for m in sorted(edges):
        print(name(m), '->', ', '.join(sorted(name(t) for t in edges[m])))
if '--check' in sys.argv:
    crossing = [c for c in cycles if len({m[0] if m else 'lib' for m in c}) > 1]
    if crossing:
        for c in crossing:
            print("import cycle across features: " + ', '.join(sorted(name(m) for m in c)), file=sys.stderr)
        sys.exit(1)
    print("no import cycle crosses a feature (cycles inside one feature: %d)" % len(cycles))
