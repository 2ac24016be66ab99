#!/usr/bin/env bash
# A bad area is reported as one exact range, however many requests and
# concurrent scans it took to find it (issue 7, row 3), and a copy stopped by a
# read error says in its -v summary what it really wrote (row 8).
# The source is a loop device over a FUSE file with two bad areas (sectors
# 900-1199 and 10000-79999) and 64 KiB requests (lib.sh's faulty_device), so
# each area spans many requests and several sub-jobs scanned at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_faulty_disk

src_img=$(make_image src.img 48M) # 98304 sectors
src_orig=$(pristine_copy "$src_img")
src=$(faulty_device "$src_img" --read-error 900:300 --read-error 10000:70000)

# read_error_lines: the last stderr's read-error lines, and any line about more.
read_error_lines() {
    grep -E " read error|not listed|more" "$STDERR_FILE" || true
}

ignoring_errors() {
    local d=$SCRATCH/d1.img
    check "--ignore-errors over the whole source: exit 64, exactly two read-error lines, nothing 'not listed'"
    expect_status 64 "$KCOPY" --ignore-errors "$src" "$d"
    diff -u --label expected --label stderr \
        <(bad_range_line source "$src" 900 1199; bad_range_line source "$src" 10000 79999) \
        <(read_error_lines) >&2 || fail "the read errors reported are not exactly the two bad areas (diff above)"
    expect_same_sectors "before the first area" "$d" 0 "$src_orig" 0 900
    expect_zero_sectors "the first area" "$d" 900 300
    expect_same_sectors "between the areas" "$d" 1200 "$src_orig" 1200 8800
    expect_zero_sectors "the second area" "$d" 10000 70000
    expect_same_sectors "after the areas" "$d" 80000 "$src_orig" 80000 18304
}

stopping_at_error() {
    local d=$SCRATCH/d2.img
    check "no --ignore-errors, a 300-sector bad area at 900: exit 64, that area as one line"
    expect_status 64 "$KCOPY" "$src:0:4096" "$d"
    diff -u --label expected --label stderr <(bad_range_line source "$src" 900 1199) <(read_error_lines) >&2 ||
        fail "the read errors reported are not exactly sectors 900-1199 (diff above)"
}

summary_after_read_error() {
    local d=$SCRATCH/d3.img written
    check "row 8: -v after a read-error stop: the summary counts what was really written"
    expect_status 64 "$KCOPY" -v "$src:0:4096" "$d"
    written=$(sed -n "s/^kcopy: destination 1 '.*': \([0-9]*\) of 4096 sectors written$/\1/p" "$STDERR_FILE")
    [[ -n $written ]] || fail "no 'N of M sectors written' line"
    ((written < 4096)) || fail "a stopped copy wrote everything?"
    stderr_line_with "^kcopy: copied $written of 4096 sectors " ||
        fail "the summary does not say 'copied $written of 4096 sectors ...'"
    expect_stderr_lacks "copied 4096 sectors"
}

run_case "row 3: --ignore-errors, bad areas over many requests and sub-jobs" ignoring_errors
run_case "row 3: stopping at the first error, a bad area over two sub-jobs" stopping_at_error
run_case "row 8: the -v summary after a read-error stop" summary_after_read_error

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
