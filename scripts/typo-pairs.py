#!/usr/bin/env python3
"""Misspelt variants of the development pairs, for `deja eval-pairs`.

    python3 scripts/typo-pairs.py swap [PAIRS.tsv] > /tmp/typo-swap.tsv
    python3 scripts/typo-pairs.py slip > /tmp/typo-slip.tsv
    python3 scripts/typo-pairs.py none > /tmp/typo-none.tsv   # the same pairs, unchanged

3,000 pairs drawn from PAIRS.tsv (default: env DEJA_CHECKLIST_DEV, else
../shared/data/pairs/checklist-dev.tsv next to the repository; fixed seed); in each, one
word of four letters or more in q2 gets one typo, the label unchanged:
- swap: two adjacent letters exchanged (CheckList's own typo perturbation);
- slip: a letter dropped, doubled, or replaced by a keyboard neighbour.
Pairs whose q2 has no such word are left out. `none` prints the swap sample's pairs
without the typo, the baseline to compare with.
"""
import csv
import os
import random
import sys

KEYBOARD = "qwertyuiop asdfghjkl zxcvbnm".split()


def neighbour(rng, c):
    for row in KEYBOARD:
        if c in row:
            i = row.index(c)
            return rng.choice([row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)])
    return c


def misspell(rng, q, mode):
    words = q.split(" ")
    idx = [i for i, w in enumerate(words) if len(w.strip("?.,!")) >= 4]
    if not idx:
        return None
    i = rng.choice(idx)
    core = words[i].rstrip("?.,!")
    tail = words[i][len(core):]
    if mode == "slip":
        j = rng.randrange(1, len(core))
        kind = rng.choice("dsi")
        if kind == "d":
            core = core[:j] + core[j + 1:]
        elif kind == "s":
            core = core[:j] + neighbour(rng, core[j]) + core[j + 1:]
        else:
            core = core[:j] + core[j] + core[j:]
    else:
        j = rng.randrange(len(core) - 1)
        core = core[:j] + core[j + 1] + core[j] + core[j + 2:]
    words[i] = core + tail
    return " ".join(words)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "swap"
    if mode not in ("swap", "slip", "none"):
        sys.exit("usage: typo-pairs.py swap|slip|none [PAIRS.tsv]")
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", "shared", "data", "pairs", "checklist-dev.tsv")
    path = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("DEJA_CHECKLIST_DEV", default)
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    header, rows = rows[0], rows[1:]
    rng = random.Random(11 if mode == "slip" else 7)
    rng.shuffle(rows)
    print("\t".join(header))
    for r in rows[:3000]:
        t = misspell(rng, r[3], "slip" if mode == "slip" else "swap")
        if t is None or t == r[3]:
            continue
        print("\t".join(r if mode == "none" else r[:3] + [t, r[4]]))


if __name__ == "__main__":
    main()
