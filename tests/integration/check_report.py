#!/usr/bin/env python3
"""Check a kcopy --json report against the schema of kcopy(1) and an exit status.

    check_report.py REPORT EXIT_STATUS [FIELD=VALUE]...

REPORT is kcopy's whole standard output: it must be exactly one JSON object
(Python's json module). Then:
- every field of the schema is there, with its type;
- "exit_status" is EXIT_STATUS;
- the statuses agree with the exit status bit for bit: below 128, bit d-1 is
  set exactly when destination d has "write_error", "flush_error" or
  "verify_error", and bit 6 exactly when the source has errors; "write_err" and
  "read_err" say the same; at 128, "error" names what is wrong and no
  destination was written; above 128, "interrupted_by" names signal N-128;
- a destination is "ok" only with all its sectors written, and no destination
  with an error is "ok";
- each FIELD=VALUE holds, FIELD a dotted path ("destinations.1.status",
  "source.errors.0.error"), VALUE compared as JSON when it parses as JSON
  (numbers, true, null), else as a string.
Prints the statuses in one line and exits 0, or says what is wrong and exits 1.
"""
import json
import signal
import sys

STATUSES = {"ok", "write_error", "flush_error", "verify_error", "not_written"}
FAILED = {"write_error", "flush_error", "verify_error"}


def fail(msg):
    print(f"check_report.py: {msg}", file=sys.stderr)
    sys.exit(1)


def expect_type(obj, field, types, where):
    if field not in obj:
        fail(f"{where}: no field {field!r}")
    if not isinstance(obj[field], types) or (isinstance(obj[field], bool) and bool not in types):
        fail(f"{where}.{field} is {obj[field]!r}, want {types}")


def check_errors(region, where):
    expect_type(region, "errors", (list,), where)
    for i, e in enumerate(region["errors"]):
        for f, t in (("sector", (int,)), ("count", (int,)), ("error", (str,)), ("message", (str,))):
            expect_type(e, f, t, f"{where}.errors[{i}]")
        if e["count"] <= 0 or not e["error"].startswith("E"):
            fail(f"{where}.errors[{i}] = {e}")
    expect_type(region, "errors_not_listed", (dict, type(None)), where)


def check_region(region, where):
    for f, t in (("argument", (str,)), ("path", (str, type(None))), ("sector", (int, type(None))),
                 ("count", (int, type(None))), ("logical_block_size", (int, type(None))),
                 ("device_bytes", (int, type(None))), ("block_device", (bool, type(None))),
                 ("direct_io", (bool, type(None))), ("exclusive", (bool, type(None))),
                 ("would_create", (bool,)), ("grows_to", (int, type(None)))):
        expect_type(region, f, t, where)
    check_errors(region, where)


def lookup(obj, path):
    for key in path.split("."):
        if isinstance(obj, list):
            obj = obj[int(key)]
        else:
            if key not in obj:
                fail(f"no field {path!r}")
            obj = obj[key]
    return obj


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    want_status = int(sys.argv[2])
    try:
        r = json.loads(text)  # one JSON value, nothing after it
    except json.JSONDecodeError as e:
        fail(f"standard output is not one JSON object: {e}\n{text}")
    if not isinstance(r, dict):
        fail("the report is not a JSON object")

    for f, t in (("version", (int,)), ("kcopy_version", (str,)), ("dry_run", (bool,)), ("exit_status", (int,)),
                 ("interrupted_by", (str, type(None))), ("error", (str, type(None))), ("read_err", (bool,)),
                 ("write_err", (int,)), ("source", (dict, type(None))), ("destinations", (list,)),
                 ("bytes", (int,)), ("seconds", (int, float)), ("bytes_per_second", (int,)),
                 ("plan", (dict, type(None)))):
        expect_type(r, f, t, "report")
    if r["version"] != 1:
        fail(f"version {r['version']}")
    if r["exit_status"] != want_status:
        fail(f"exit_status {r['exit_status']}, but kcopy exited {want_status}")
    if r["source"] is not None:
        check_region(r["source"], "source")
    for i, d in enumerate(r["destinations"]):
        where = f"destinations[{i}]"
        check_region(d, where)
        expect_type(d, "status", (str,), where)
        expect_type(d, "sectors_written", (int,), where)
        expect_type(d, "flush_error", (str, type(None)), where)
        if d["status"] not in STATUSES:
            fail(f"{where}.status {d['status']!r}")
        # A run resumed from a mapfile writes what the mapfile left to copy.
        resumed = r.get("mapfile") and r["mapfile"]["existed"]
        want_written = r["mapfile"]["bytes_to_copy"] // 512 if resumed else d["count"]
        if d["status"] == "ok" and (d["errors"] or d["flush_error"] or d["sectors_written"] != want_written):
            fail(f"{where} is 'ok' but {d}")
        if (d["errors"] or d["flush_error"]) and d["status"] not in FAILED:
            fail(f"{where} has errors but status {d['status']!r}")

    statuses = [d["status"] for d in r["destinations"]]
    source_errors = bool(r["source"] and r["source"]["errors"])
    if want_status < 128:
        for i, s in enumerate(statuses):
            if (s in FAILED) != bool(want_status >> i & 1):
                fail(f"destination {i + 1} is {s!r} but bit {i} of exit status {want_status} is {want_status >> i & 1}")
        if (want_status & 63) >> len(statuses):
            fail(f"exit status {want_status} sets bits of destinations that do not exist")
        if source_errors != bool(want_status & 64):
            fail(f"source errors {r['source'] and r['source']['errors']} but bit 6 of {want_status}")
        if r["write_err"] != want_status & 63 or r["read_err"] != bool(want_status & 64):
            fail(f"write_err {r['write_err']} / read_err {r['read_err']} disagree with {want_status}")
        if r["interrupted_by"] is not None or r["error"] is not None:
            fail(f"interrupted_by {r['interrupted_by']!r}, error {r['error']!r} for exit status {want_status}")
    elif want_status == 128:
        if not r["error"]:
            fail("exit status 128 without an 'error'")
        if any(s != "not_written" for s in statuses) or any(d["sectors_written"] for d in r["destinations"]):
            fail(f"a refused run wrote something: {statuses}")
        if r["bytes"] != 0:
            fail(f"a refused run copied {r['bytes']} bytes")
    else:
        want = "SIG" + signal.Signals(want_status - 128).name[3:]
        if r["interrupted_by"] != want:
            fail(f"interrupted_by {r['interrupted_by']!r}, want {want!r}")
    if r["seconds"] > 0 and r["bytes"] and abs(r["bytes_per_second"] - r["bytes"] / r["seconds"]) > 1 + r["bytes_per_second"] * 0.01:
        fail(f"bytes_per_second {r['bytes_per_second']} is not bytes / seconds")

    for arg in sys.argv[3:]:
        path, _, value = arg.partition("=")
        try:
            want = json.loads(value)
        except json.JSONDecodeError:
            want = value
        got = lookup(r, path)
        if got != want:
            fail(f"{path} is {got!r}, want {want!r}")
    print(" ".join(statuses) or "(no destinations)")


if __name__ == "__main__":
    main()
