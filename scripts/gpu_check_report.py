"""Markdown for scripts/gpu_check's summary, from pytest's JUnit XML and pytest-benchmark's JSON.

    python scripts/gpu_check_report.py tests RESULTS.xml    # counts, per-test table, failures
    python scripts/gpu_check_report.py tests-brief RESULTS.xml   # the same without the table
    python scripts/gpu_check_report.py counts RESULTS.xml   # one line: passed, failed, errors, skipped
    python scripts/gpu_check_report.py bench RESULTS.json   # one table of every benchmark figure

Standard library only, so that it runs with whatever interpreter is at hand.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict


def _first_line(text: str, limit: int = 300) -> str:
    line = next((s.strip() for s in (text or "").splitlines() if s.strip()), "")
    line = line.replace("|", "\\|")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _results(path: str):
    """{test id: (passed | failure | error | skipped, message, seconds)} from JUnit XML."""
    status = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        detail = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        kind = "passed" if detail is None else detail.tag
        message = "" if detail is None else (detail.get("message") or detail.text or "")
        status[test_id] = (kind, message, float(case.get("time", 0) or 0))
    return status


def counts_line(path: str) -> str:
    counts = Counter(kind for kind, _, _ in _results(path).values())
    return (f"{counts['passed']} passed, {counts['failure']} failed, {counts['error']} errors, "
            f"{counts['skipped']} skipped")


def tests_markdown(path: str, table: bool = True) -> str:
    status = _results(path)
    seconds = sum(t for _, _, t in status.values())
    lines = [f"**{counts_line(path)}** ({len(status)} tests, {seconds:.1f} s in tests)"]
    if not status:
        return "\n".join(lines + ["", "No test was collected."])

    if table:  # one row per test function (parametrizations folded): 40 seeds are not 40 rows
        per_fn = defaultdict(Counter)
        for test_id, (kind, _, _) in status.items():
            per_fn[test_id.split("[")[0]][kind] += 1
        lines += ["", "| test | passed | failed | errors | skipped |", "|---|---:|---:|---:|---:|"]
        for fn, c in sorted(per_fn.items()):
            lines.append(f"| `{fn}` | {c['passed']} | {c['failure']} | {c['error']} | {c['skipped']} |")

    bad = [(tid, kind, msg) for tid, (kind, msg, _) in status.items() if kind in ("failure", "error")]
    if bad:
        lines += ["", "Failures and errors:", ""]
        lines += [f"- `{tid}` ({kind}): {_first_line(msg)}" for tid, kind, msg in bad]
    skips = Counter(_first_line(msg) for kind, msg, _ in status.values() if kind == "skipped")
    if skips:
        lines += ["", "Skip reasons:", ""]
        lines += [f"- {n}× {reason or '(no reason given)'}" for reason, n in skips.most_common()]
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def bench_markdown(path: str) -> str:
    with open(path) as f:
        data = json.load(f)
    benches = data.get("benchmarks", [])
    if not benches:
        return "No benchmark produced a figure."
    groups = defaultdict(list)
    for b in benches:
        groups[b.get("group") or ""].append(b)
    hidden = {"impl", "baseline", "layers", "size", "batch", "memory_format"}  # (in the group's name)
    lines = ["Times are per call, in milliseconds; \"× baseline\" is the median's ratio to the group's "
             "baseline (marked ◆) in the same run (< 1 = faster). Peak memory is CUDA memory allocated "
             "above the inputs during one call.", "",
             "| group | implementation | median (ms) | min (ms) | rounds | × baseline | other figures |",
             "|---|---|---:|---:|---:|---:|---|"]
    for group, items in groups.items():
        base = next((b for b in items if b.get("extra_info", {}).get("baseline")), None)
        for b in items:
            extra = b.get("extra_info", {})
            stats = b["stats"]
            name = str(extra.get("impl", b.get("name", "")))
            if b is base:
                name += " ◆"
            ratio = f"{stats['median'] / base['stats']['median']:.2f}×" if base else ""
            other = ", ".join(f"{k}={_fmt(v)}" for k, v in extra.items() if k not in hidden)
            lines.append(f"| {group} | {name} | {stats['median'] * 1e3:.3f} | {stats['min'] * 1e3:.3f} | "
                         f"{stats['rounds']} | {ratio} | {other} |")
    return "\n".join(lines)


def main(argv) -> int:
    commands = {"tests": tests_markdown, "tests-brief": lambda path: tests_markdown(path, table=False),
                "counts": counts_line, "bench": bench_markdown}
    if len(argv) != 2 or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print(commands[argv[0]](argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
