#!/usr/bin/env bash
# --mapfile on a copy whose destination overlaps its source on the same device
# (kcopy copies it like memmove), whole, and stopped and resumed with the
# same command.
# Such a copy overwrites source bytes it has already read: a rerun that
# trusts a map which does not yet say those bytes are finished reads them
# again, changed, and writes wrong data.  So kcopy must either refuse
# --mapfile for an overlapping copy (exit 128, nothing written), or keep the
# map on disk ahead of the writes that overwrite the source, so that a rerun
# after any stop - SIGTERM, or SIGKILL (as a crash or a power cut would) -
# ends with exactly the memmove result (reference.py copy).
# 48 MiB, --max-rate 16M, on a 64 MiB loop device on a tmpfs, in both
# directions (destination after the source: kcopy copies from the end;
# destination before it: from the start); for each: a copy not stopped (at
# full speed) must give the memmove result, and with a stop:
#   SIGTERM once the map (rewritten every 0.2 s) shows 8 MiB finished;
#   SIGKILL once the map (rewritten every 0.5 s) shows 8 MiB finished, 0.3 s later;
#   SIGKILL once 16 MiB reached the device, with the default interval (30 s).
# And the same bytes under two names: the destination on a second loop device
# of the same image.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/mapfile_lib.sh"
need_root
need_kcopy
need_python
need_mapfile
env --default-signal=INT true 2>/dev/null || skip "env --default-signal not supported (coreutils < 8.31)"

COUNT=98304 # 48 MiB
tmp=$(mount_tmpfs 200M)
img=$tmp/dev.img
head -c 64M /dev/urandom >"$img" || fail "cannot create $img"
orig=$(pristine_copy "$img" "$tmp/dev.orig")
dev=$(attach "$img")
MAPS=$SCRATCH/maps
mkdir -p "$MAPS"

# bg_exit_status: wait (up to KCOPY_TEST_TIMEOUT) for the background kcopy to
# exit; sets BG_RC to its exit status.
bg_exit_status() {
    local t0=$SECONDS
    while bg_running; do
        ((SECONDS - t0 <= KCOPY_TEST_TIMEOUT)) || fail "kcopy still running after ${KCOPY_TEST_TIMEOUT}s"
        sleep 0.05
    done
    BG_RC=0
    wait "$BG_PID" 2>/dev/null || BG_RC=$?
    _CHILD_PID=
    sed 's/^/    stderr: /' "$STDERR_FILE"
}

# refused_check MAP: the background kcopy, which exited BG_RC, was refused:
# 128, one line, nothing written, MAP not created.
refused_check() {
    ((BG_RC == 128)) || fail "kcopy exited $BG_RC; want 128 (refused) or a copy that gives the memmove result"
    expect_one_error_line
    expect_matches_model "refused: the device unchanged" "$dev" "$orig"
    [[ ! -e $1 ]] || fail "refused, but the mapfile $1 was created"
    echo "    refused: --mapfile with an overlapping copy"
}

# overlap_case SS DS STOP [DEST_DEV]: copy $dev:SS:COUNT to DEST_DEV:DS
# (default $dev; another loop device of the same image is the same bytes)
# with a new mapfile,
# stop it as STOP says (none, term, kill-interval, kill-default), rerun it, and
# compare with the memmove model.
overlap_case() {
    local ss=$1 ds=$2 stop=$3 to=${4:-$dev} map expected w0 seen
    # run_case runs this in a subshell, which lib.sh's cleanup does not cover:
    # should it fail, it must not leave kcopy running.
    trap '[[ -z ${BG_PID:-} ]] || kill -KILL "$BG_PID" 2>/dev/null || true' EXIT
    map=$MAPS/$ss-$ds-$stop-$(basename -- "$to").map
    expected=$tmp/expected.img
    reference copy "$orig" "$ss" "$COUNT" "$orig" "$expected" "$ds" || fail "cannot build the memmove model"
    restore_device "$dev" "$orig"
    w0=$(sectors_written "$to")
    local opts=(--max-rate 16M --mapfile "$map")
    case $stop in
    none) opts=(--mapfile "$map") ;;
    term) opts+=(--mapfile-interval 0.2) ;;
    kill-interval) opts+=(--mapfile-interval 0.5) ;;
    esac
    start_kcopy "${opts[@]}" "$dev:$ss:$COUNT" "$to:$ds"
    if [[ $stop == none ]]; then
        bg_exit_status
        if ((BG_RC == 128)); then
            refused_check "$map"
            return 0
        fi
        ((BG_RC == 0)) || fail "exit status $BG_RC, want 0 (or 128: refused)"
        expect_matches_model "the device after the copy: the memmove result" "$dev" "$expected"
        ddrescuelog -D -i $((ss * 512)) -s $((COUNT * 512)) "$map" || fail "the map does not say the range finished"
        return 0
    fi
    sleep 0.2 # (48 MiB at 16 MiB/s: still running unless refused)
    if ! bg_running; then
        bg_exit_status
        refused_check "$map"
        return 0
    fi
    case $stop in
    term)
        seen=$(wait_map_finished "$map" $((8 << 20)))
        kill -TERM "$BG_PID" 2>/dev/null || fail "kcopy ended before SIGTERM could be sent"
        finish_kcopy 143
        ;;
    kill-interval)
        seen=$(wait_map_finished "$map" $((8 << 20)))
        sleep 0.3
        kill -KILL "$BG_PID" 2>/dev/null || fail "kcopy ended before SIGKILL could be sent"
        finish_kcopy 137
        ;;
    kill-default)
        while (($(sectors_written "$to") - w0 < 32768)); do
            bg_running || fail "kcopy ended before 16 MiB reached the device"
            sleep 0.02
        done
        kill -KILL "$BG_PID" 2>/dev/null || fail "kcopy ended before SIGKILL could be sent"
        finish_kcopy 137
        ;;
    esac
    wait_not_held "$dev"
    wait_not_held "$to"
    expect_map_readable "the map after the stop" "$map"
    echo "    the map after the stop: $(map_bytes "$map" +) bytes finished; $((($(sectors_written "$to") - w0) * 512)) bytes written to the device"
    expect_status 0 "$KCOPY" --mapfile "$map" "$dev:$ss:$COUNT" "$to:$ds"
    expect_matches_model "the device after the rerun: the memmove result" "$dev" "$expected"
    ddrescuelog -D -i $((ss * 512)) -s $((COUNT * 512)) "$map" || fail "the map does not say the range finished"
}

for dir in "0 16384 destination after the source" "16384 0 destination before the source"; do
    read -r ss ds label <<<"$dir"
    run_case "$label ($dev:$ss:$COUNT to $dev:$ds), not stopped" overlap_case "$ss" "$ds" none
    run_case "$label ($dev:$ss:$COUNT to $dev:$ds), SIGTERM, rerun" overlap_case "$ss" "$ds" term
    run_case "$label ($dev:$ss:$COUNT to $dev:$ds), SIGKILL 0.3 s after a map rewrite, rerun" overlap_case "$ss" "$ds" kill-interval
    run_case "$label ($dev:$ss:$COUNT to $dev:$ds), SIGKILL after 16 MiB with the default interval, rerun" overlap_case "$ss" "$ds" kill-default
done

# The same bytes under another name: a second loop device of the same image.
alias=$(attach "$img")
run_case "destination after the source, on another loop device of the same image ($dev:0:$COUNT to $alias:16384), not stopped" \
    overlap_case 0 16384 none "$alias"
run_case "destination after the source, on another loop device of the same image ($dev:0:$COUNT to $alias:16384), SIGKILL after 16 MiB, rerun" \
    overlap_case 0 16384 kill-default "$alias"

if ((${#failed[@]})); then
    printf 'failed: %s\n' "${failed[@]}" >&2
    fail "${#failed[@]} case(s) failed"
fi
pass
