#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Strict parser of the Prometheus text exposition format 0.0.4 (test_metrics.sh).

check FILE
    Every line is a "# HELP", a "# TYPE" or a sample; every sample belongs to
    a family announced with both HELP and TYPE before it (a family's samples
    are contiguous, HELP/TYPE once each); metric names match
    ^[a-zA-Z_:][a-zA-Z0-9_:]*$, label names ^[a-zA-Z_][a-zA-Z0-9_]*$ (no
    "__" prefix), label values are quoted with only \\\\, \\" and \\n escapes;
    no series (name + label set) twice; values are floats; counters end in
    _total; the text ends with a newline.  Prints "OK families=N samples=M"
    or "FAIL <why>" (exit 1).
get FILE NAME [LABEL=VALUE ...]
    Prints the value of that exact series (integers without ".0"), or
    "absent".
sum FILE NAME [LABEL=VALUE ...]
    Sum of every series of NAME whose labels include the given ones."""
import re
import sys

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Bad(Exception):
    pass


def parse_labels(s, lineno):
    """s starts after '{'; returns (dict, rest after '}')."""
    labels = {}
    i = 0
    while True:
        if s[i:i + 1] == "}":
            return labels, s[i + 1:]
        m = re.match(r"[a-zA-Z_][a-zA-Z0-9_]*", s[i:])
        if not m:
            raise Bad(f"line {lineno}: bad label name at {s[i:i + 20]!r}")
        name = m.group(0)
        if name.startswith("__"):
            raise Bad(f"line {lineno}: reserved label name {name}")
        i += len(name)
        if s[i:i + 2] != '="':
            raise Bad(f"line {lineno}: expected =\" after label {name}")
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise Bad(f"line {lineno}: unterminated label value")
            c = s[i]
            if c == "\\":
                e = s[i + 1:i + 2]
                if e not in ("\\", '"', "n"):
                    raise Bad(f"line {lineno}: bad escape \\{e} in a label value")
                val.append("\n" if e == "n" else e)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise Bad(f"line {lineno}: raw newline in a label value")
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise Bad(f"line {lineno}: label {name} twice")
        labels[name] = "".join(val)
        if s[i:i + 1] == ",":
            i += 1
        elif s[i:i + 1] != "}":
            raise Bad(f"line {lineno}: expected , or }} after a label value")


def parse(text):
    """{(name, frozenset(labels.items())): value}, families"""
    if not text.endswith("\n"):
        raise Bad("the text does not end with a newline")
    helps, types, series = {}, {}, {}
    done = set()      # families whose samples are over
    current = None
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                fam = parts[2]
                if not NAME_RE.match(fam):
                    raise Bad(f"line {lineno}: bad metric name {fam!r}")
                table = helps if parts[1] == "HELP" else types
                if fam in table:
                    raise Bad(f"line {lineno}: second {parts[1]} for {fam}")
                if len(parts) < 4 or not parts[3]:
                    raise Bad(f"line {lineno}: empty {parts[1]} for {fam}")
                if parts[1] == "TYPE" and parts[3] not in TYPES:
                    raise Bad(f"line {lineno}: unknown type {parts[3]!r}")
                if fam in done or (current and current != fam and fam in series_fams(series)):
                    raise Bad(f"line {lineno}: {parts[1]} of {fam} after its samples")
                if current and current != fam:
                    done.add(current)
                current = fam
                table[fam] = parts[3]
            continue
        if not line.strip():
            raise Bad(f"line {lineno}: empty line")
        m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if not m:
            raise Bad(f"line {lineno}: bad metric name in {line[:40]!r}")
        name = m.group(0)
        rest = line[len(name):]
        labels = {}
        if rest.startswith("{"):
            labels, rest = parse_labels(rest[1:], lineno)
        if not rest.startswith(" "):
            raise Bad(f"line {lineno}: expected a space before the value")
        fields = rest[1:].split(" ")
        if len(fields) not in (1, 2):
            raise Bad(f"line {lineno}: expected VALUE [TIMESTAMP]")
        try:
            value = float(fields[0])
        except ValueError:
            raise Bad(f"line {lineno}: bad value {fields[0]!r}") from None
        if name not in helps or name not in types:
            raise Bad(f"line {lineno}: sample {name} without HELP and TYPE before it")
        if name != current:
            raise Bad(f"line {lineno}: sample {name} outside its family's block")
        if types[name] == "counter" and not name.endswith("_total"):
            raise Bad(f"line {lineno}: counter {name} does not end in _total")
        if types[name] == "counter" and value < 0:
            raise Bad(f"line {lineno}: negative counter {name}")
        key = (name, frozenset(labels.items()))
        if key in series:
            raise Bad(f"line {lineno}: duplicate series {name}{labels}")
        series[key] = value
    for fam in helps:
        if fam not in types:
            raise Bad(f"HELP without TYPE for {fam}")
    return series, types


def series_fams(series):
    return {k[0] for k in series}


def fmt(v):
    return str(int(v)) if v == int(v) else repr(v)


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        series, types = parse(text)
    except Bad as e:
        print(f"FAIL {e}")
        sys.exit(1)
    if cmd == "check":
        print(f"OK families={len(types)} samples={len(series)}")
        return
    name = sys.argv[3]
    want = dict(a.split("=", 1) for a in sys.argv[4:])
    if cmd == "get":
        v = series.get((name, frozenset(want.items())))
        print("absent" if v is None else fmt(v))
    elif cmd == "sum":
        print(fmt(sum(v for (n, ls), v in series.items()
                      if n == name and set(want.items()) <= set(ls))))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
