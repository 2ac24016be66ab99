#!/usr/bin/env bash
# --json: one JSON object on stdout for every outcome kcopy reports, valid for
# Python's json module, with the schema of kcopy(1), and statuses that agree with
# the exit status bit for bit (tests/integration/check_report.py):
#   a complete copy (0), destination 2 of 3 on a full tmpfs (2), a source read
#   error (64), an interrupted copy (130), refusals (128: a too small device, a
#   bad option); the human messages stay on stderr, and the data is exact.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python
need_faulty_disk

CHECK_REPORT=$TESTS_DIR/check_report.py

# expect_report WANT_STATUS [FIELD=VALUE...]: the last stdout is a valid report of
# a run that exited WANT_STATUS, with those fields.
expect_report() {
    local statuses
    statuses=$("$PYTHON" "$CHECK_REPORT" "$STDOUT_FILE" "$@") || {
        sed 's/^/    stdout: /' "$STDOUT_FILE" >&2
        fail "the JSON report is wrong (see above)"
    }
    printf '    report: exit %s, destinations: %s\n' "$1" "$statuses"
}

src_img=$(make_image src.img 32M) # 65536 sectors
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
d1_img=$(make_image d1.img 32M)
d1=$(attach "$d1_img")
d3_img=$(make_image d3.img 32M)
d3=$(attach "$d3_img")
small=$(attach "$(make_image small.img 16M)")

success() {
    check "a complete copy to two destinations: exit 0, both 'ok', every sector written"
    expect_status 0 "$KCOPY" --json "$src" "$d1" "$d3:0:65536"
    expect_report 0 destinations.0.status=ok destinations.1.status=ok \
        destinations.0.sectors_written=65536 destinations.1.sectors_written=65536 \
        source.path="$src" source.count=65536 source.logical_block_size=512 destinations.1.argument="$d3:0:65536" \
        bytes=33554432 interrupted_by=null error=null dry_run=false
    [[ ! -s $STDERR_FILE ]] || fail "a successful copy wrote to stderr"
    expect_matches_model "destination 1" "$d1" "$src_orig"
    expect_matches_model "destination 2" "$d3" "$src_orig"
}

failing_destination() {
    local full
    full=$(tmpfs_full_device 8M 64M)
    check "destination 2 of 3 on a full tmpfs: exit 2, 'ok write_error ok', its error listed"
    expect_status 2 "$KCOPY" --json "$src" "$d1" "$full" "$d3"
    expect_report 2 destinations.0.status=ok destinations.1.status=write_error destinations.2.status=ok \
        write_err=2 read_err=false
    "$PYTHON" - "$STDOUT_FILE" <<'PY' || fail "destination 2's errors are not its ENOSPC/EIO write error"
import json, sys
d = json.load(open(sys.argv[1]))["destinations"][1]
assert d["errors"] and all(e["error"] in ("ENOSPC", "EIO") for e in d["errors"]), d["errors"]
assert 0 < d["sectors_written"] < 65536, d["sectors_written"]
PY
    stderr_line_with "^kcopy: destination 2 .*write error" || fail "stderr does not name the write error"
    expect_matches_model "destination 1" "$d1" "$src_orig"
    expect_matches_model "destination 3" "$d3" "$src_orig"
}

read_error() {
    local bad_img bad
    bad_img=$(make_image bad.img 16M)
    bad=$(faulty_device "$bad_img" --read-error 20001:1)
    check "a source with an unreadable sector: exit 64, the sector in source.errors, no destination 'ok'"
    expect_status 64 "$KCOPY" --json "$bad" "$d1:0:32768"
    expect_report 64 destinations.0.status=not_written read_err=true write_err=0 source.errors.0.error=EIO
    "$PYTHON" - "$STDOUT_FILE" <<'PY' || fail "source.errors does not hold sector 20001"
import json, sys
r = json.load(open(sys.argv[1]))
assert any(e["sector"] <= 20001 < e["sector"] + e["count"] for e in r["source"]["errors"]), r["source"]["errors"]
assert r["destinations"][0]["sectors_written"] < 32768
PY
}

interrupted() {
    local big dst
    big=$(attach "$(make_image big.img 512M)")
    dst=$(attach "$(make_image big_dst.img 512M)")
    check "SIGINT during a copy: exit 130, interrupted_by SIGINT, sectors_written as stderr says"
    printf '  $ %s &   # SIGINT after 0.3 s\n' "$(show_cmd "$KCOPY" --json --io-size 64K --pages 32 "$big" "$dst")"
    env --default-signal=INT "$KCOPY" --json --io-size 64K --pages 32 "$big" "$dst" \
        >"$STDOUT_FILE" 2>"$STDERR_FILE" </dev/null &
    local pid=$! rc=0
    _CHILD_PID=$pid
    sleep 0.3
    kill -INT "$pid"
    wait "$pid" || rc=$?
    _CHILD_PID=
    sed 's/^/    stderr: /' "$STDERR_FILE"
    ((rc == 130)) || fail "exit status $rc, want 130"
    local written
    written=$(sed -n "s/^kcopy: destination 1 '.*': \([0-9]*\) of 1048576 sectors written$/\1/p" "$STDERR_FILE")
    [[ -n $written ]] || fail "no 'N of M sectors written' line"
    expect_report 130 interrupted_by=SIGINT destinations.0.status=not_written \
        destinations.0.sectors_written="$written" bytes=$((written * 512))
}

refusals() {
    check "a destination too small: exit 128, the report names the error stderr gives"
    local before
    before=$(sectors_sha "$d1" 0 65536)
    expect_status 128 "$KCOPY" --json "$src" "$d1" "$small"
    expect_one_error_line
    expect_report 128 error="$(sed 's/^kcopy: //' "$STDERR_FILE")" destinations.0.status=not_written \
        destinations.1.status=not_written source.path="$src" destinations.1.device_bytes=16777216 plan=null
    [[ $(sectors_sha "$d1" 0 65536) == "$before" ]] || fail "a refused run changed destination 1"

    check "a bad option: exit 128, a report with the error and no regions"
    expect_status 128 "$KCOPY" --pages 0 --json "$src" "$d1"
    expect_one_error_line
    expect_report 128 error="$(sed 's/^kcopy: //' "$STDERR_FILE")" source=null destinations=[]

    check "a region that does not parse: exit 128, the region's argument in the report"
    expect_status 128 "$KCOPY" --json "$src:12x" "$d1"
    expect_report 128 source.argument="$src:12x" source.path=null destinations.0.argument="$d1"
}

run_case "success" success
run_case "a failing destination" failing_destination
run_case "a source read error" read_error
run_case "an interrupted copy" interrupted
run_case "refusals" refusals

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
