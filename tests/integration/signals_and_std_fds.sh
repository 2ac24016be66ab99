#!/usr/bin/env bash
# kcopy's own messages never land in a destination, a dead stderr never kills it,
# and every signal a user or a dropped session sends ends the copy cleanly or
# leaves it running (issue 7, rows 1, 4, 5 and 8):
#   row 1  with stderr (or all of 0-2) closed, no device gets fd 0-2: the
#          device holds exactly the copy, kcopy's messages went nowhere;
#   row 4  SIGINT while stderr is a pipe nobody reads: exit 130, not a death by
#          SIGPIPE (141); the copy drained and what was written is source data;
#   row 5  SIGHUP (a dropped SSH session): exit 129 after a drain, "hangup"
#          notice and how far each destination got; SIGUSR1 twice: two status
#          lines, the copy goes on to exit 0, exact;
#   row 8  after SIGINT the -v summary states the sectors really written (the
#          same number as the "N of M sectors written" line), not the plan's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

src_img=$(make_image src.img 512M) # 1048576 sectors: seconds through a small pool
src=$(attach "$src_img")
dst_img=$SCRATCH/dst.img
truncate -s 512M "$dst_img"
dst=$(attach "$dst_img")
dst_orig=$(pristine_copy "$dst_img")
SLOW=(--io-size 64K --pages 32) # small requests, few in flight: the copy takes a while

# start_copy [KCOPY ARGS...]: start kcopy SLOW src dst in the background with
# stderr to $STDERR_FILE; sets PID. Default signal dispositions, as at a terminal.
start_copy() {
    printf '  $ %s &\n' "$(show_cmd "$KCOPY" "${SLOW[@]}" "$@" "$src" "$dst")"
    env --default-signal=INT,TERM,HUP "$KCOPY" "${SLOW[@]}" "$@" "$src" "$dst" >"$STDOUT_FILE" 2>"$STDERR_FILE" </dev/null &
    PID=$!
    _CHILD_PID=$PID
}

# finish_copy WANT: wait for the background kcopy; it must exit WANT.
finish_copy() {
    local rc=0
    wait "$PID" || rc=$?
    _CHILD_PID=
    sed 's/^/    stderr: /' "$STDERR_FILE"
    ((rc == $1)) || fail "exit status $rc, want $1"
}

# expect_partial_copy: every sector of the destination is the source's or its old one.
expect_partial_copy() {
    local n
    n=$(count_copied_sectors "destination" "$dst" 0 "$src_img" 0 "$dst_orig" 1048576)
    ((n < 1048576)) || fail "the copy was complete: the signal came too late to test anything"
}

reset_dst() {
    fallocate --punch-hole --offset 0 --length $((512 << 20)) "$dst_img"
    blockdev --flushbufs "$dst"
}

# With stderr closed, the first descriptor kcopy opens would be fd 2; a device
# that is both source and destination is opened once, read-write: the case in
# which a log line would land in it (at offset 0, outside the copied range).
row1_closed_stderr() {
    expect_status 0 "$KCOPY" -q "$src:0:2048" "$dst:0"
    check "row 1: kcopy -v --buffered DST:0:2048 DST:4096 2>&- : exit 0, DST holds the copy and nothing else"
    expect_status 0 bash -c '"$@" 2>&-' _ "$KCOPY" -v --buffered "$dst:0:2048" "$dst:4096"
    expect_same_sectors "the source range, untouched" "$dst" 0 "$src_img" 0 2048
    expect_same_sectors "destination range" "$dst" 4096 "$src_img" 0 2048
    expect_zero_sectors "after the range" "$dst" 6144 8
    check "row 1: all of 0, 1 and 2 closed: the same"
    expect_status 0 bash -c '"$@" <&- >&- 2>&-' _ "$KCOPY" -v --buffered "$dst:0:2048" "$dst:8192"
    expect_same_sectors "the source range, untouched" "$dst" 0 "$src_img" 0 2048
    expect_same_sectors "destination range" "$dst" 8192 "$src_img" 0 2048
    check "row 1: a file on ramfs (O_DIRECT notice) copied within itself with stderr closed: only the range changes"
    local mnt
    mnt=$(mktemp -d "$SCRATCH/ramfs.XXXXXX")
    mount -t ramfs kcopy-test "$mnt" || skip "cannot mount ramfs"
    _push_cleanup umount "$mnt"
    read_sectors "$src_img" 0 32 >"$mnt/f.img"
    expect_status 0 bash -c '"$@" 2>&-' _ "$KCOPY" -v "$mnt/f.img:0:16" "$mnt/f.img:100"
    expect_same_sectors "ramfs file before the range" "$mnt/f.img" 0 "$src_img" 0 32
    expect_zero_sectors "ramfs file between" "$mnt/f.img" 32 68
    expect_same_sectors "ramfs file range" "$mnt/f.img" 100 "$src_img" 0 16
    (($(size_bytes "$mnt/f.img") == 116 * 512)) || fail "ramfs file is $(size_bytes "$mnt/f.img") bytes, want $((116 * 512))"
}

row4_sigint_dead_stderr_pipe() {
    reset_dst
    check "row 4: SIGINT while stderr is a pipe whose reader has gone: exit 130 (not 141), a clean partial copy"
    printf '  $ %s 2>dead-pipe &   # SIGINT after 0.3 s\n' "$(show_cmd "$KCOPY" "${SLOW[@]}" "$src" "$dst")"
    env --default-signal=INT,TERM "$KCOPY" "${SLOW[@]}" "$src" "$dst" 2> >(exit 0) </dev/null &
    PID=$!
    _CHILD_PID=$PID
    sleep 0.3
    kill -INT "$PID"
    : >"$STDERR_FILE"
    finish_copy 130
    expect_partial_copy
}

row5_sighup() {
    reset_dst
    check "row 5: SIGHUP: exit 129 after the drain, a 'hangup' notice and how far the copy got"
    start_copy
    sleep 0.3
    kill -HUP "$PID"
    finish_copy 129
    stderr_line_with "^kcopy: hangup: stopping" || fail "no 'hangup' notice"
    stderr_line_with "^kcopy: destination 1 '$dst': [0-9]+ of 1048576 sectors written$" || fail "no 'N of M sectors written' line"
    expect_partial_copy
}

row5_sigusr1() {
    reset_dst
    check "row 5: SIGUSR1 twice: two status lines, the copy goes on: exit 0, exact"
    start_copy
    sleep 0.2
    kill -USR1 "$PID"
    sleep 0.2
    kill -USR1 "$PID"
    finish_copy 0
    local n
    n=$(grep -cE '^kcopy: [0-9]+ of 1048576 sectors copied \([0-9]+%\), [0-9.]+ s, [0-9.]+ MiB/s$' "$STDERR_FILE" || true)
    ((n == 2)) || fail "$n status lines, want 2"
    expect_same_sectors "destination" "$dst" 0 "$src_img" 0 1048576
}

row8_summary_after_sigint() {
    reset_dst
    check "row 8: -v after SIGINT: the summary counts the sectors really written"
    start_copy -v
    sleep 0.3
    kill -INT "$PID"
    finish_copy 130
    local written
    written=$(sed -n "s/^kcopy: destination 1 '.*': \([0-9]*\) of 1048576 sectors written$/\1/p" "$STDERR_FILE")
    [[ -n $written ]] || fail "no 'N of M sectors written' line"
    stderr_line_with "^kcopy: copied $written of 1048576 sectors .*complete on 0 of 1 destinations" ||
        fail "the summary does not say 'copied $written of 1048576 sectors ...'"
    ! grep -q "^kcopy: copied 1048576 sectors" "$STDERR_FILE" || fail "the summary claims the whole copy"
}

run_case "row 1: closed stderr" row1_closed_stderr
run_case "row 4: SIGINT with a dead stderr pipe" row4_sigint_dead_stderr_pipe
run_case "row 5: SIGHUP" row5_sighup
run_case "row 5: SIGUSR1" row5_sigusr1
run_case "row 8: summary after SIGINT" row8_summary_after_sigint

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
