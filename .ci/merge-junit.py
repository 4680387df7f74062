#!/usr/bin/env python3
"""Merges the JUnit reports of a sharded run (nextest's, one per runner) into one.

    python3 .ci/merge-junit.py -o junit.xml shard-1/junit.xml shard-2/junit.xml ...

Each input's <testsuite> elements go under one <testsuites>, whose tests, failures, errors
and time are the sums; a suite that appears in several shards (one test binary split across
runners) is merged into one. A missing input is an error: a shard that wrote no report did
not run.
"""

import argparse
import sys
import xml.etree.ElementTree as ET


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--name", default="harness")
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args()
    suites: dict[str, ET.Element] = {}
    for path in a.inputs:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            print(f"merge-junit: {path}: {e}", file=sys.stderr)
            return 1
        for suite in root.iter("testsuite"):
            name = suite.get("name", "")
            into = suites.get(name)
            if into is None:
                suites[name] = suite
                continue
            for case in list(suite):
                into.append(case)
            for attr in ("tests", "failures", "errors", "skipped", "disabled"):
                total = int(into.get(attr, "0")) + int(suite.get(attr, "0"))
                into.set(attr, str(total))
            into.set("time", f"{float(into.get('time', '0')) + float(suite.get('time', '0')):.3f}")
    out = ET.Element("testsuites", name=a.name)
    for attr in ("tests", "failures", "errors"):
        out.set(attr, str(sum(int(s.get(attr, "0")) for s in suites.values())))
    out.set("time", f"{sum(float(s.get('time', '0')) for s in suites.values()):.3f}")
    for name in sorted(suites):
        out.append(suites[name])
    ET.ElementTree(out).write(a.output, encoding="utf-8", xml_declaration=True)
    print(f"merged {len(a.inputs)} reports: {out.get('tests')} tests, {out.get('failures')} failures, {out.get('errors')} errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
