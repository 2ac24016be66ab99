#!/usr/bin/env bash
# kill -KILL of a copy, then the same copy again at once (issue 19, row 6): a
# script that kills and restarts a copy needs no sleep. The rerun's O_EXCL
# open of the destination must not find it "in use": whatever the killed
# kcopy held (descriptors, io_uring rings, libaio contexts, I/O in flight)
# must not make it refuse the device once the killed process has been reaped
# (the kernel may still end the killed copy's I/O in flight a moment later,
# holding the claim until then: the rerun waits for that, briefly).
# Eight times: each kill lands in a copy in full flight (the destination and
# the I/O method set up), each rerun must exit 0 with an exact copy.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

src_img=$(make_image src.img 512M) # seconds through a small pool
src=$(attach "$src_img")
dst_img=$SCRATCH/dst.img
truncate -s 512M "$dst_img"
dst=$(attach "$dst_img")
SLOW=(--io-size 64K --pages 64) # small requests, few in flight: the copy takes a while
SMALL=16384                     # sectors of the rerun's copy (8 MiB)

# in_flight PID: PID's kcopy has the destination open and its I/O method set
# up (an io_uring ring or a libaio context: one more anonymous descriptor, or
# an aio mapping), i.e. the copy is running.
in_flight() {
    local pid=$1 fd dev=no ring=no
    for fd in /proc/"$pid"/fd/*; do
        case $(readlink "$fd" 2>/dev/null) in
            "$dst") dev=yes ;;
            *io_uring*) ring=yes ;;
        esac
    done
    grep -qF '[aio]' /proc/"$pid"/maps 2>/dev/null && ring=yes
    [[ $dev == yes && $ring == yes ]]
}

check "8 times: kill -KILL during a copy, then at once the copy again onto the same device: not 'in use'"
for i in $(seq 8); do
    printf '  $ %s &   # then kill -KILL once it copies\n' "$(show_cmd "$KCOPY" "${SLOW[@]}" "$src" "$dst")"
    "$KCOPY" "${SLOW[@]}" "$src" "$dst" >/dev/null 2>&1 </dev/null &
    pid=$!
    _CHILD_PID=$pid
    for _ in $(seq 1000); do
        in_flight "$pid" && break
        kill -0 "$pid" 2>/dev/null || fail "run $i: kcopy ended before it was killed"
        sleep 0.01
    done
    in_flight "$pid" || fail "run $i: kcopy did not start copying within 10 s"
    sleep 0.05 # requests in flight
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    # At once, as a script would (no sleep, nothing in between that takes time).
    rc=0
    "$KCOPY" "$src:0:$SMALL" "$dst" >/dev/null 2>"$STDERR_FILE" </dev/null || rc=$?
    _CHILD_PID=
    printf '  $ %s   # at once: exit %s\n' "$(show_cmd "$KCOPY" "$src:0:$SMALL" "$dst")" "$rc"
    sed 's/^/    stderr: /' "$STDERR_FILE"
    ((rc == 0)) || fail "run $i: the rerun right after kill -KILL exited $rc, want 0"
    expect_same_sectors "run $i" "$dst" 0 "$src_img" 0 "$SMALL"
done
pass
