#!/usr/bin/env bash
# A signal sent the moment kcopy starts (issue 19, row 5): scripts send
# SIGUSR1 right after starting a copy, as they do with dd. kcopy blocks the
# signals it handles from its first instruction until its handlers are in
# place, also across the exec of kcopy-nbd for an NBD copy; then:
#   - SIGUSR1, 20 times for a local copy and 20 times for an NBD copy: kcopy
#     is not killed (exit 0, not 138), the copy is exact; a status line may
#     be printed;
#   - SIGTERM, 5 times each: the copy stops as after a later SIGTERM (exit
#     143 after the notice), never a death by the signal.
# signal_at_start.py sends each signal as soon as the exec has happened,
# without any sleep.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python

src_img=$(make_image src.img 4M)
src=$(attach "$src_img")
dst_img=$SCRATCH/dst.img
truncate -s 4M "$dst_img"
dst=$(attach "$dst_img")

# at_start SIG RUNS WANT SOURCE: RUNS copies of SOURCE to dst, each with SIG
# at its start; each must exit WANT (with 0: dst must then hold the source).
at_start() {
    local sig=$1 runs=$2 want=$3 source=$4 got
    printf '  $ %s   # %s times, with SIG%s at once\n' "$(show_cmd "$KCOPY" "$source" "$dst")" "$runs" "$sig"
    got=$("$PYTHON" "$TESTS_DIR/signal_at_start.py" "$sig" "$runs" "$STDERR_FILE" --same "$dst" "$dst_img" "$src_img" \
        "$KCOPY" "$source" "$dst")
    sed 's/^/    stderr of the last: /' "$STDERR_FILE"
    sort <<<"$got" | uniq -c | sed 's/^ */    /'
    [[ $(sort -u <<<"$got") == "exit $want" ]] || fail "SIG$sig at the start: not every run exited $want"
}

# runs SOURCE LABEL: 20 copies with SIGUSR1 at the start, 5 with SIGTERM.
runs() {
    local source=$1 label=$2
    check "$label: SIGUSR1 at the start, 20 times: exit 0 and an exact copy"
    at_start USR1 20 0 "$source"
    check "$label: SIGTERM at the start, 5 times: the copy stops with exit 143, not a death by the signal"
    at_start TERM 5 143 "$source"
    expect_stderr_has "terminated: stopping after the I/O in flight completes"
}

runs "$src" "local copy"

if command -v nbdkit >/dev/null && [[ -x $(dirname "$(readlink -f "$KCOPY")")/kcopy-nbd ]]; then
    source "$TESTS_DIR/nbd_lib.sh"
    nbd_start sig -r file "$src_img"
    runs "$NBD_URI" "NBD copy (kcopy execs kcopy-nbd)"
else
    printf '  (no NBD case: nbdkit or kcopy-nbd missing)\n'
fi
pass
