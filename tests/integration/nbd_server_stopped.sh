#!/usr/bin/env bash
# An NBD destination whose server stops answering without closing its socket
# (SIGSTOP: a wedged server, a network that drops everything) is given up
# after kcopy's stall timeout (--nbd-timeout 3), not waited for forever, and
# not dropped early: kcopy exits exactly 2 (that destination's bit) between 2
# and 20 s after the stop; stderr names destination 2 with an error; the loop
# destination is a complete, byte-exact copy; the stalled export's file holds,
# sector by sector, the source's or its old bytes.
# (The default timeout, 30 s, is the same code with another number.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/nbd_lib.sh"
need_root
need_kcopy
need_nbdkit
need_python

STALL=3       # kcopy's stall timeout (seconds): --nbd-timeout
MIN=2         # kcopy may not give up before this many seconds after the stop
MAX=20        # nor end later than this
SECTORS=32768 # 16 MiB
DELAY=1

src_img=$(make_image src.img 16M)
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
dl_img=$(make_image dl.img 16M)
dl=$(attach "$dl_img")
d2_img=$(make_image d2.img 16M)
d2_orig=$(pristine_copy "$d2_img")

nbd_start d2 file "$d2_img"
u_d2=$NBD_URI
pid_d2=$NBD_PID

check "destination 2's server stops answering mid-copy (SIGSTOP): exit exactly 2, $MIN-$MAX s after the stop"
args=(--nbd-timeout "$STALL" --max-rate 4M "$src" "$dl" "$u_d2")
printf '  $ %s &   # kill -STOP nbdkit after %s s\n' "$(show_cmd "$KCOPY" "${args[@]}")" "$DELAY"
timeout -k 5 $((DELAY + MAX + 10)) "$KCOPY" "${args[@]}" >"$STDOUT_FILE" 2>"$STDERR_FILE" </dev/null &
_CHILD_PID=$!
sleep "$DELAY"
# timeout(1) runs as long as kcopy does (whatever kcopy execs or forks).
if ! _alive "$_CHILD_PID"; then
    fail "kcopy ended (or never ran) before ${DELAY} s: the stop would not come mid-copy"
fi
kill -STOP "$pid_d2"
t0=$(now_ms)
rc=0
wait "$_CHILD_PID" || rc=$?
t1=$(now_ms)
_CHILD_PID=
nbd_kill d2 # not SIGCONT: it would then store what was left in its socket, while we read its file
if [[ -s $STDERR_FILE ]]; then sed 's/^/    stderr: /' "$STDERR_FILE"; fi
ms=$((t1 - t0))
printf '    kcopy exited %s, %d.%03d s after the stop\n' "$rc" $((ms / 1000)) $((ms % 1000))
((rc != 124 && rc != 137)) || fail "kcopy hung on the stopped server: killed by timeout(1)"
((ms <= MAX * 1000)) || fail "kcopy ended $ms ms after the stop, later than ${MAX} s (stall timeout ${STALL} s)"
((ms >= MIN * 1000)) || fail "kcopy gave up on the server $ms ms after the stop, before ${MIN} s (stall timeout ${STALL} s)"
((rc == 2)) || fail "exit status $rc, want 2"
error_line_about "destination 2" || fail "no stderr line names destination 2 with an error"
! error_line_about "destination 1" || fail "stderr reports an error on destination 1"
! error_line_about source || fail "stderr reports a source error"

check "destination 1 (loop) is a byte-exact copy"
expect_matches_model "destination 1" "$dl" "$src_orig"
check "the stalled export's file holds only the source's or its old sectors"
copied=$(count_copied_sectors "destination 2" "$d2_img" 0 "$src_orig" 0 "$d2_orig" "$SECTORS")
((copied < SECTORS)) || fail "the stalled export got every sector: the stop was not mid-copy"

pass
