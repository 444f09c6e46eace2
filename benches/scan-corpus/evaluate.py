#!/usr/bin/env python3
"""Scores secret scanners' findings against labels.tsv; prints Markdown tables.

    evaluate.py FILES_DIR --kmseal kmseal.json --detect-secrets ds.json [--misses] [--false-positives]

A label is detected when a tool has a finding on its line (or any line of its FIRST-LAST span);
a finding on a line without a label is a false positive, counted once per line whatever the
number of rules that fired there. Paths are compared relative to FILES_DIR.
Run by scripts/scan-corpus. Python 3 standard library only.
"""

import argparse
import json
import os
import sys
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from generate import KINDS  # noqa: E402  (which kinds kmseal scan claims)


def norm(path):
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def load_labels(path):
    labels = []
    with open(path, encoding="utf-8") as f:
        for row in f:
            if row.startswith("#") or not row.strip():
                continue
            p, line, kind = row.rstrip("\n").split("\t")
            first, _, last = line.partition("-")
            labels.append((p, int(first), int(last or first), kind))
    return labels


def kmseal_findings(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return [(norm(x["path"]), x["line"], x["rule"]) for x in doc["findings"]]


def detect_secrets_findings(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    out = []
    for name, items in doc["results"].items():
        for x in items:
            out.append((norm(name), x["line_number"], x["type"]))
    return out


def corpus_files(root):
    files = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            full = os.path.join(dirpath, n)
            with open(full, encoding="utf-8") as f:
                files[norm(os.path.relpath(full, root))] = f.read().count("\n")
    return files


def score(labels, findings):
    by_path = defaultdict(list)
    for p, first, last, kind in labels:
        by_path[p].append((first, last, kind))
    hit_lines = defaultdict(set)
    rules_at = defaultdict(set)
    for p, line, rule in findings:
        hit_lines[p].add(line)
        rules_at[(p, line)].add(rule)
    detected, missed = [], []
    for p, first, last, kind in labels:
        (detected if any(first <= ln <= last for ln in hit_lines[p]) else missed).append((p, first, last, kind))
    fps = sorted(
        (p, ln, ",".join(sorted(rules_at[(p, ln)])))
        for p, lines in hit_lines.items()
        for ln in lines
        if not any(first <= ln <= last for first, last, _ in by_path[p])
    )
    return detected, missed, fps


def pct(a, b):
    return f"{a}/{b} ({100 * a / b:.0f}%)" if b else "0/0"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files")
    ap.add_argument("--labels", default=os.path.join(HERE, "labels.tsv"))
    ap.add_argument("--kmseal")
    ap.add_argument("--detect-secrets", dest="ds")
    ap.add_argument("--ds-version", default="")
    ap.add_argument("--misses", action="store_true", help="list each tool's missed labels")
    ap.add_argument("--false-positives", action="store_true", help="list each tool's false positives")
    args = ap.parse_args()

    labels = load_labels(args.labels)
    files = corpus_files(args.files)
    missing = {p for p, *_ in labels} - files.keys()
    if missing:
        sys.exit(f"labels name files not in {args.files}: {sorted(missing)[:5]}")
    lines = sum(files.values())
    tools = []
    if args.kmseal:
        tools.append(("kmseal scan", kmseal_findings(args.kmseal)))
    if args.ds:
        tools.append((f"detect-secrets {args.ds_version}".strip(), detect_secrets_findings(args.ds)))
    for name, findings in tools:
        stray = {p for p, _, _ in findings} - files.keys()
        if stray:
            sys.exit(f"{name}: findings in files not in the corpus: {sorted(stray)[:5]}")
    results = [(name, *score(labels, findings)) for name, findings in tools]

    claimed = [lb for lb in labels if KINDS[lb[3]]]
    print(f"Corpus: {len(files)} files, {lines:,} lines, {len(labels)} planted secrets "
          f"({len(claimed)} of kinds kmseal scan has a rule for).\n")
    print("| | " + " | ".join(name for name, *_ in results) + " |")
    print("|---|" + "---:|" * len(results))
    rows = [
        ("planted secrets detected", lambda d, m, f: pct(len(d), len(labels))),
        ("of the kinds kmseal claims", lambda d, m, f: pct(sum(KINDS[x[3]] for x in d), len(claimed))),
        ("false positives (lines)", lambda d, m, f: str(len(f))),
        ("false positives per file", lambda d, m, f: f"{len(f) / len(files):.3f}"),
        ("false positives per 1,000 lines", lambda d, m, f: f"{1000 * len(f) / lines:.2f}"),
        ("files with a false positive", lambda d, m, f: pct(len({p for p, _, _ in f}), len(files))),
    ]
    for title, cell in rows:
        print(f"| {title} | " + " | ".join(cell(d, m, f) for _, d, m, f in results) + " |")

    print("\n| kind | planted | " + " | ".join(name for name, *_ in results) + " |")
    print("|---|---:|" + "---:|" * len(results))
    planted = Counter(lb[3] for lb in labels)
    for kind in KINDS:
        if not planted[kind]:
            continue
        counts = [sum(1 for x in d if x[3] == kind) for _, d, _, _ in results]
        mark = "" if KINDS[kind] else " (no kmseal rule)"
        print(f"| {kind}{mark} | {planted[kind]} | " + " | ".join(str(c) for c in counts) + " |")

    for name, detected, missed, fps in results:
        if args.misses:
            print(f"\n{name}: missed {len(missed)}")
            for p, first, last, kind in missed:
                print(f"  {p}:{first}{'-' + str(last) if last != first else ''}  {kind}")
        if args.false_positives:
            print(f"\n{name}: false positives {len(fps)}")
            for p, ln, rules in fps:
                print(f"  {p}:{ln}  {rules}")


if __name__ == "__main__":
    main()
