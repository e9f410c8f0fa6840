"""A runner of MongoDB's unified test format for the CRUD spec tests that
pymongo ships in its source distribution (`test/crud/unified/*.json`),
executed with pymongo against a real `fluence devnet`.

pymongo's own harness (`test/test_crud_unified.py`) cannot run against one
gateway: its setup sends `getCmdLineOpts`, `serverStatus` and
`getParameter: "*"` before any test and errors every test when they fail. This
runner implements the format's rules itself:

- `runOnRequirements` are checked against what the gateway is (a standalone
  server announcing MongoDB 7.0.0, no authentication, not serverless); a test
  whose requirements no entry satisfies is *skipped* with the unmet
  requirement as the reason.
- entities (client, database, collection), `initialData`, operations with
  `expectResult` / `expectError`, `expectEvents` (command monitoring) and
  `outcome` follow the format's matching rules: extra fields are allowed in
  root documents only, numbers compare by value across int32/int64/double,
  `$$exists`, `$$type`, `$$unsetOrMatches`, `$$lte`, `$$matchAsRoot`,
  `$$matchAsDocument` and `$$matchesEntity` are evaluated.

Every test ends as passed, failed (with the first mismatch as the reason) or
skipped. `unified_baseline.txt` lists the ids of tests that pass; the run
fails if one of them fails, and lists tests that pass but are not in the
baseline yet (`--write-baseline` rewrites it).

    python unified_runner.py --spec-dir PATH/test/crud/unified [--uri URI]
"""


from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time
import traceback

from unified.runner import Outcome, Runner

HERE = pathlib.Path(__file__).resolve().parent
BASELINE = HERE / "unified_baseline.txt"


# Why a test fails, from its failure message or id, for docs/compatibility.md.
# The first needle found in "<test id> <reason>" wins, so a test-specific
# needle stands before the message it would otherwise match.
FAILURE_CAUSES = [
    ("Aggregate to collection with let option",
     "aggregate `let` variables are refused (NotImplemented 238); the test also needs `$expr` and `$out`"),
    ("'let' variables is not supported",
     "`let` variables are refused on update, findAndModify and aggregate (NotImplemented 238); "
     "the test also needs `$expr`"),
    ("$expr is not supported",
     "`$expr` is refused (NotImplemented 238); the test uses it with `let` variables"),
    ("collation other than simple", "collations other than simple are not supported"),
    ("arrayFilters", "`arrayFilters` (`$[<id>]`) are not supported"),
    ("configureFailPoint", "needs fail points (`configureFailPoint`), a mongod test facility"),
    ("$merge DuplicateKey error",
     "database-level aggregate (`aggregate: 1` with `$documents`) is refused; the test also needs `$merge`"),
    ("stage $merge", "`$merge` is not supported"),
    ("stage $out", "`$out` is not supported"),
    ("whole database", "database-level aggregate (`aggregate: 1`, `$listLocalSessions`) is not supported"),
    ("viewOn", "views are not supported"),
    ("'collMod'", "`collMod` (document validation) is not supported"),
    ("multiple batches works", "expects natural (insertion) order from an unsorted find/aggregate; "
     "the gateway returns encrypted-id order"),
    ("comment sets comment on getMore", "expects natural (insertion) order from an unsorted find/aggregate; "
     "the gateway returns encrypted-id order"),
]


def failure_cause(outcome: Outcome) -> str:
    text = f"{outcome.test_id} {outcome.reason}"
    for needle, cause in FAILURE_CAUSES:
        if needle in text:
            return cause
    return "unclassified: " + outcome.reason.split(", full error")[0][:160]


def markdown(outcomes: list[Outcome]) -> str:
    """Failed tests grouped by cause, then skip reasons, as Markdown."""
    lines = ["| failed test | cause |", "|---|---|"]
    for o in sorted((o for o in outcomes if o.status == "failed"), key=lambda o: o.test_id):
        lines.append(f"| `{o.test_id}` | {failure_cause(o)} |")
    skipped: dict[str, int] = {}
    for o in outcomes:
        if o.status == "skipped":
            skipped[o.reason] = skipped.get(o.reason, 0) + 1
    lines += ["", "| skipped because | tests |", "|---|---|"]
    lines += [f"| {reason} | {n} |" for reason, n in sorted(skipped.items(), key=lambda x: -x[1])]
    return "\n".join(lines) + "\n"


def load_baseline(path: pathlib.Path) -> set[str]:
    if not path.exists():
        return set()
    return {
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }


def write_baseline(path: pathlib.Path, passed: list[str], sdist: str) -> None:
    header = (
        "# Unified CRUD spec tests (from the pymongo sdist named below) that pass against\n"
        "# the gateway; tests/drivers/python/unified_runner.py fails if one of them fails.\n"
        f"# source: {sdist}\n"
    )
    path.write_text(header + "".join(f"{t}\n" for t in sorted(passed)))


def run_all(files: list[pathlib.Path], uri: str | None, pattern: str | None, verbose: bool) -> list[Outcome]:
    """Every test of `files` against `uri`, or against a devnet started for the run."""
    devnet = None
    if uri is None:
        from devnet import Devnet

        devnet = Devnet()
        uri = devnet.uri
    outcomes: list[Outcome] = []
    try:
        runner = Runner(uri)
        try:
            for path in files:
                for outcome in runner.run_file(path):
                    if pattern and pattern not in outcome.test_id:
                        continue
                    outcomes.append(outcome)
                    if verbose:
                        print(f"{outcome.status.upper():8} {outcome.test_id}"
                              + (f"\n         {outcome.reason[:300]}" if outcome.reason else ""))
        finally:
            runner.close()
    finally:
        if devnet is not None:
            devnet.stop()
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec-dir", required=True, type=pathlib.Path,
                        help="test/crud/unified of the pymongo sdist")
    parser.add_argument("--uri", help="an already running gateway (default: start a devnet)")
    parser.add_argument("--baseline", type=pathlib.Path, default=BASELINE)
    parser.add_argument("--write-baseline", action="store_true",
                        help="record the tests that pass now as the baseline")
    parser.add_argument("--report", type=pathlib.Path, help="write every outcome as JSON here")
    parser.add_argument("--markdown", type=pathlib.Path,
                        help="write failed tests with their causes and skip reasons as Markdown")
    parser.add_argument("-k", dest="pattern", help="only tests whose id contains this")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run everything N times, each on a new devnet; a test passes if it always passed")
    parser.add_argument("-v", dest="verbose", action="store_true", help="print every test")
    args = parser.parse_args(argv)

    files = sorted(args.spec_dir.glob("*.json"))
    if not files:
        print(f"no unified spec files in {args.spec_dir}", file=sys.stderr)
        return 2

    started = time.monotonic()
    runs = [run_all(files, args.uri, args.pattern, args.verbose) for _ in range(args.repeat)]
    # A test passes only if it passed in every run: the gateway's natural
    # order differs from devnet to devnet (it follows encrypted ids), so a
    # test that depends on it passes only by chance.
    outcomes = []
    for first in runs[0]:
        same = [run_outcome for run in runs for run_outcome in run if run_outcome.test_id == first.test_id]
        failed = next((o for o in same if o.status == "failed"), None)
        outcomes.append(failed or first)
    elapsed = time.monotonic() - started

    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("passed", "failed", "skipped")}
    passed = [o.test_id for o in outcomes if o.status == "passed"]
    baseline = load_baseline(args.baseline)
    ran = {o.test_id: o for o in outcomes}
    regressions = sorted(t for t in baseline if t in ran and ran[t].status != "passed")
    missing = sorted(t for t in baseline if t not in ran) if not args.pattern else []
    new = sorted(t for t in passed if t not in baseline)

    if args.report:
        args.report.write_text(json.dumps(
            {"counts": counts, "outcomes": [dataclasses.asdict(o) for o in outcomes]}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(outcomes))
    if args.write_baseline:
        source = next((p.name for p in args.spec_dir.resolve().parents if p.name.startswith("pymongo-")),
                      str(args.spec_dir))
        write_baseline(args.baseline, passed, f"{source} sdist, test/crud/unified, {args.repeat} runs")
        print(f"wrote {len(passed)} passing tests to {args.baseline}")
    else:
        for test_id in new:
            print(f"newly passing (add to {args.baseline.name}): {test_id}")
    for test_id in regressions:
        print(f"REGRESSION: {test_id}\n    {ran[test_id].reason[:500]}")
    for test_id in missing:
        print(f"MISSING: baseline test {test_id} was not found in {args.spec_dir}")
    print(f"unified CRUD spec tests in {elapsed:.1f}s; failures outside the baseline are "
          "expected (docs/compatibility.md)")
    # Worded so that it does not read as a test runner's pass/fail line: the
    # failures here are expected ones, the verdict is the baseline check.
    print(f"unified CRUD: {counts['passed']} pass, {counts['failed']} fail "
          f"(expected: outside the baseline), {counts['skipped']} skipped")
    if (regressions or missing) and not args.write_baseline:
        print(f"{len(regressions) + len(missing)} baseline tests no longer pass", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.exit(130)
