#!/usr/bin/env bash
# An NBD destination whose server fails every write (nbdkit --filter=error
# memory, error-pwrite-rate=100%, EIO) sets exactly its own exit-status bit and
# is named on stderr with the error; the other destinations (a loop device and
# an nbdkit file export) still get a complete, byte-exact copy:
#   - destination 2 of 3: exit 2, --json says write_error (EIO) for it alone;
#   - the only destination: exit 1;
#   - destination 1 of 3, with ranges: exit 1, the others exact at their offsets;
#   - --ignore-errors: exit 2, its failed range reported exactly (every sector
#     of its destination range, merged into one line), the loop device exact;
#   - a server that loses writes (nbdkit eval: writes succeed and store
#     nothing): a plain copy cannot tell (exit 0); with --verify exit exactly 2,
#     a "verify error" line for it, the loop destination exact.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/nbd_lib.sh"
need_root
need_kcopy
need_nbdkit
need_python

src_img=$(make_image src.img 32M) # 65536 sectors
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
d1_img=$(make_image d1.img 32M)
d1_orig=$(pristine_copy "$d1_img")
d1=$(attach "$d1_img")
d3_img=$(make_image d3.img 40M) # served by nbdkit file
d3_orig=$(pristine_copy "$d3_img")

nbd_start bad --filter=error memory 64M error=EIO error-pwrite-rate=100% error-zero-rate=100% error-trim-rate=100%
u_bad=$NBD_URI
nbd_start d3 file "$d3_img"
u_d3=$NBD_URI

check "the fixture: reads of $u_bad work, writes fail with EIO"
nbd_fetch "$u_bad" "$SCRATCH/bad.img"
head -c 1M /dev/urandom >"$SCRATCH/one.img"
if nbdcopy "$SCRATCH/one.img" "$u_bad" 2>"$SCRATCH/nbdcopy.err"; then
    fail "fixture: nbdcopy wrote to $u_bad"
fi
grep -q "Input/output error" "$SCRATCH/nbdcopy.err" || fail "fixture: nbdcopy's write did not fail with EIO: $(cat "$SCRATCH/nbdcopy.err")"

# expect_write_error_line N: one stderr line names destination N, says "write
# error" and EIO's text; no line reports an error on another destination or
# on the source.
expect_write_error_line() {
    local n=$1 i
    stderr_line_with "^kcopy: destination $n '" "write error" "Input/output error" ||
        fail "no stderr line 'kcopy: destination $n '...': write error ...: Input/output error'"
    for i in 1 2 3 4 5 6; do
        ((i == n)) && continue
        ! error_line_about "destination $i" ||
            fail "stderr reports an error on destination $i, which had none"
    done
    ! error_line_about source || fail "stderr reports a source error"
}

reset_all() {
    restore_device "$d1" "$d1_orig"
    restore_file "$d3_img" "$d3_orig"
}

model() { # model ORIG SRC_SECTOR DST_SECTOR COUNT: prints a fresh model's path
    local m
    m=$(mktemp "$SCRATCH/expected.XXXXXX")
    cp -- "$1" "$m" || fail "cannot copy $1"
    model_copy "$m" "$src_orig" "$2" "$3" "$4"
    printf '%s\n' "$m"
}

second_of_three() {
    reset_all
    check "destination 2 of 3 fails every write: kcopy --json $src $d1 $u_bad $u_d3 exits exactly 2"
    expect_status 2 "$KCOPY" --json "$src" "$d1" "$u_bad" "$u_d3"
    expect_write_error_line 2
    expect_report 2 destinations.0.status=ok destinations.1.status=write_error destinations.2.status=ok \
        destinations.1.argument="$u_bad" write_err=2 read_err=false
    "$PYTHON" - "$STDOUT_FILE" <<'PY' || fail "destination 2's errors in the report are not EIO write errors"
import json, sys
d = json.load(open(sys.argv[1]))["destinations"][1]
assert d["errors"] and all(e["error"] == "EIO" for e in d["errors"]), d["errors"]
assert d["sectors_written"] == 0, d["sectors_written"]
PY
    check "destinations 1 (loop) and 3 (NBD) are byte-exact copies"
    expect_matches_model "destination 1" "$d1" "$src_orig"
    expect_matches_model "destination 3" "$d3_img" "$(model "$d3_orig" 0 0 65536)"
    expect_matches_model "the source" "$src" "$src_orig"
}

only_destination() {
    check "the only destination fails: kcopy $src $u_bad exits exactly 1"
    expect_status 1 "$KCOPY" "$src" "$u_bad"
    expect_write_error_line 1
}

first_with_ranges() {
    reset_all
    check "destination 1 of 3, with ranges: kcopy $src:1000:40000 $u_bad:8 $d1:100 $u_d3:3000 exits exactly 1"
    expect_status 1 "$KCOPY" "$src:1000:40000" "$u_bad:8" "$d1:100" "$u_d3:3000"
    expect_write_error_line 1
    expect_matches_model "destination 2 (loop, at 100)" "$d1" "$(model "$d1_orig" 1000 100 40000)"
    expect_matches_model "destination 3 (NBD, at 3000)" "$d3_img" "$(model "$d3_orig" 1000 3000 40000)"
}

ignoring_errors() {
    reset_all
    check "--ignore-errors: kcopy --ignore-errors $src:0:2048 $d1 $u_bad:100 exits exactly 2"
    expect_status 2 "$KCOPY" --ignore-errors "$src:0:2048" "$d1" "$u_bad:100"
    check "stderr lists destination 2's failed range exactly: sectors 100-2147, one line"
    grep -F " write error at " "$STDERR_FILE" >"$SCRATCH/got.txt" || true
    diff -u --label expected --label stderr <(bad_range_line "destination 2" "$u_bad" 100 2147) "$SCRATCH/got.txt" >&2 ||
        fail "the write errors reported are not exactly sectors 100-2147 of destination 2 (diff above)"
    expect_matches_model "destination 1 (loop)" "$d1" "$(model "$d1_orig" 0 0 2048)"
}

losing_writes() {
    local lie=$SCRATCH/lie.img
    head -c 4M /dev/urandom >"$lie"
    # eval scripts get: METHOD HANDLE COUNT OFFSET; pwrite's data on stdin.
    nbd_start lie eval get_size='echo 4194304' can_write='exit 0' can_flush='exit 0' flush='exit 0' \
        pread="dd if=$lie skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none" pwrite='cat >/dev/null'
    local u_lie=$NBD_URI
    reset_all
    check "a server that loses writes, without --verify: kcopy $src:0:8192 $d1 $u_lie exits 0 (it cannot tell)"
    kcopy_ok "$src:0:8192" "$d1" "$u_lie"
    check "with --verify: kcopy --verify $src:0:8192 $d1 $u_lie exits exactly 2"
    reset_all
    expect_status 2 "$KCOPY" --verify "$src:0:8192" "$d1" "$u_lie"
    grep -E "verify error" "$STDERR_FILE" >"$SCRATCH/got.txt" || true
    printf "kcopy: destination 2 '%s': verify error at sectors 0-8191 (8192 sectors): read back different data\n" \
        "$u_lie" >"$SCRATCH/want.txt"
    diff -u --label expected --label stderr "$SCRATCH/want.txt" "$SCRATCH/got.txt" >&2 ||
        fail "the verify errors reported are not exactly sectors 0-8191 of destination 2"
    ! error_line_about "destination 1" || fail "stderr reports an error on destination 1"
    expect_matches_model "destination 1 (loop)" "$d1" "$(model "$d1_orig" 0 0 8192)"
}

run_case "destination 2 of 3" second_of_three
run_case "the only destination" only_destination
run_case "destination 1 of 3, with ranges" first_with_ranges
run_case "--ignore-errors" ignoring_errors
run_case "a server that loses writes, --verify" losing_writes

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
