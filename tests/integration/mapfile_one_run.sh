#!/usr/bin/env bash
# A mapfile is one run's (issue 19, row 4): while a slow copy (--max-rate) holds MAP, and
# after MAP has been rewritten (replaced by rename) several times, a second kcopy on MAP -
# the same command, MAP spelled as ./MAP or $PWD/./MAP, to another destination, a dry run
# too - exits 128 at once with one line naming MAP (another destination: unchanged); the
# first run then finishes with exit 0, an exact copy, a finished map, and no lock file left.
# A lock file left by a killed run holds nothing: the next run takes it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/mapfile_lib.sh"
need_root
need_kcopy
need_python
need_mapfile

cd "$SCRATCH"
src_img=$(make_image src.img 48M) # 98304 sectors
src=$(attach "$src_img")
make_image dst.img 48M >/dev/null # a file: nothing but the lock stops a second run writing it
other_img=$(make_image other.img 48M)
other_orig=$(pristine_copy "$other_img")
map=$SCRATCH/m.map

# second_refused ARGS...: kcopy ARGS exits 128 with one line naming the map; other.img unchanged.
second_refused() {
    expect_status 128 "$KCOPY" "$@"
    expect_one_error_line
    expect_stderr_has "mapfile '${MAP_AS}' is in use by another kcopy run"
    cmp -s other.img "$other_orig" || fail "the refused run wrote to other.img"
}

held_by_a_slow_run() {
    # 48 MiB at 8 MiB/s: the first chunk (16 MiB) takes 2 s, the others less; the map is
    # written at the start and rewritten (a new inode) after each chunk.
    start_kcopy --max-rate 8M --mapfile "$map" --mapfile-interval 0.2 "$src" dst.img
    local first_pid=$BG_PID first_out=$STDOUT_FILE first_err=$STDERR_FILE
    wait_map_finished "$map" $((16 << 20)) >/dev/null # rewritten at least once by now
    # The second runs keep their own output files: the first's are still being written.
    STDOUT_FILE=$SCRATCH/.stdout2 STDERR_FILE=$SCRATCH/.stderr2
    bg_running || fail "the first run ended before the second could start"
    MAP_AS=$map second_refused --mapfile "$map" "$src" dst.img
    MAP_AS=./m.map second_refused --mapfile ./m.map "$src" dst.img
    MAP_AS=$PWD/./m.map second_refused --mapfile "$PWD/./m.map" "$src_img" other.img
    MAP_AS=m.map second_refused --dry-run --mapfile m.map "$src" dst.img
    bg_running || fail "the first run ended before every second run was tried: cannot tell"
    STDOUT_FILE=$first_out STDERR_FILE=$first_err BG_PID=$first_pid _CHILD_PID=$first_pid
    finish_kcopy 0
    cmp -s dst.img "$src_img" || fail "the first run's copy is not exact"
    ddrescuelog -D "$map" || fail "the first run's map is not finished"
    [[ ! -e $map.lock ]] || fail "the lock file $map.lock is left behind"
    expect_no_temp_files "$map"
}
run_case "a second run while a slow one holds the map: refused (128), the first completes" held_by_a_slow_run

stale_lock() {
    # The lock file of a run killed by SIGKILL stays; it holds no lock.
    rm -f "$map"
    : >"$map.lock"
    kcopy_ok --mapfile "$map" "$src" other.img
    cmp -s other.img "$src_img" || fail "the copy is not exact"
    [[ ! -e $map.lock ]] || fail "the lock file is left behind"
}
run_case "a lock file left by a killed run: the next run takes it" stale_lock

if ((${#failed[@]})); then
    printf 'failed: %s\n' "${failed[@]}" >&2
    fail "${#failed[@]} case(s) failed"
fi
pass
