#!/usr/bin/env bash
# An NBD server killed (SIGKILL, as a crash would end it) in the middle of a
# copy is that endpoint's error, never a hang:
#   - the destination's server: kcopy ends within BOUND seconds of the kill
#     with exactly that destination's bit (2); stderr names destination 2 with
#     an error; the loop destination is a complete, byte-exact copy; the dead
#     export's file holds, sector by sector, the source's or its old bytes,
#     some but not all of them (so the kill really came mid-copy);
#   - the source's server: kcopy ends within BOUND seconds with exactly 64;
#     stderr names the source with an error; each destination (a loop device,
#     an nbdkit file export) holds the source's or its old bytes, sector by
#     sector, and only part of the copy;
#   - each dead area is one error line with one cause, "the server closed the
#     connection" (not one line per errno: ECONNRESET, ENOTCONN, ESHUTDOWN);
#   - the source's server, with --ignore-errors: exit exactly 64 within BOUND
#     seconds; the rest of the source is reported unreadable (--json) and
#     written as zeroes: each destination sector is the source's where no
#     error is reported and zero exactly where one is, every sector written.
# The copies are slowed with --max-rate 8M (32 MiB: about 4 s), the kill comes
# after 1 s.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/nbd_lib.sh"
need_root
need_kcopy
need_nbdkit
need_python

BOUND=20       # seconds from the kill to kcopy's exit, at most
SECTORS=65536  # 32 MiB
RATE=8M
DELAY=1

src_img=$(make_image src.img 32M)
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
nsrc_img=$(make_image nsrc.img 32M) # an NBD source
nsrc_orig=$(pristine_copy "$nsrc_img")
dl_img=$(make_image dl.img 32M)
dl_orig=$(pristine_copy "$dl_img")
dl=$(attach "$dl_img")
d2_img=$(make_image d2.img 32M) # an NBD destination
d2_orig=$(pristine_copy "$d2_img")

# run_and_kill WANT SERVER ARGS...: kcopy ARGS in the background; after DELAY
# seconds, while it still runs, SIGKILL the NBD server SERVER; kcopy must then
# exit WANT within BOUND seconds.  Stdout and stderr in
# $STDOUT_FILE and $STDERR_FILE as expect_status leaves them.
run_and_kill() {
    local want=$1 server=$2 rc=0 t0 t1
    shift 2
    printf '  $ %s &   # kill -9 NBD server %s after %s s; want exit %s within %s s of the kill\n' \
        "$(show_cmd "$KCOPY" "$@")" "$server" "$DELAY" "$want" "$BOUND"
    timeout -k 5 $((DELAY + BOUND + 10)) "$KCOPY" "$@" >"$STDOUT_FILE" 2>"$STDERR_FILE" </dev/null &
    _CHILD_PID=$!
    sleep "$DELAY"
    # timeout(1) runs as long as kcopy does (whatever kcopy execs or forks).
    if ! _alive "$_CHILD_PID"; then
        fail "kcopy ended (or never ran) before ${DELAY} s: the kill would not come mid-copy"
    fi
    t0=$(now_ms)
    nbd_kill "$server"
    wait "$_CHILD_PID" || rc=$?
    t1=$(now_ms)
    _CHILD_PID=
    if [[ -s $STDERR_FILE ]]; then sed 's/^/    stderr: /' "$STDERR_FILE"; fi
    printf '    kcopy exited %s, %d.%03d s after the kill\n' "$rc" $(((t1 - t0) / 1000)) $(((t1 - t0) % 1000))
    ((rc != 124 && rc != 137)) || fail "kcopy hung: killed by timeout(1) after the server died"
    ((t1 - t0 <= BOUND * 1000)) || fail "kcopy took $((t1 - t0)) ms after the kill, more than ${BOUND} s"
    ((rc == want)) || fail "exit status $rc, want $want"
}

# one_connection_line WHO: each error line about WHO in the last stderr says
# "the server closed the connection", and no two of them are one area (ranges
# that touch): one line per dead area, with one cause.
one_connection_line() {
    local who=$1 n prev_end=-2 first last
    n=$(grep -cE "^kcopy: $who '[^']*': (read|write) error at" "$STDERR_FILE" || true)
    ((n >= 1)) || fail "no error line about $who"
    ! grep -E "^kcopy: $who '[^']*': (read|write) error at" "$STDERR_FILE" |
        grep -vE "error at sectors [0-9]+-[0-9]+ \([0-9]+ sectors?\): the server closed the connection(; nothing more was written to it)?\$" ||
        fail "an error line about $who does not say (only) 'the server closed the connection'"
    while read -r first last; do
        ((first > prev_end + 1)) || fail "two error lines about $who for one area (sector $prev_end, then $first)"
        prev_end=$last
    done < <(sed -nE "s/^kcopy: $who '[^']*': (read|write) error at sectors ([0-9]+)-([0-9]+) .*/\2 \3/p" "$STDERR_FILE" | sort -n)
}

reset_all() {
    restore_device "$dl" "$dl_orig"
    restore_file "$d2_img" "$d2_orig"
}

destination_killed() {
    reset_all
    nbd_start d2 file "$d2_img"
    check "destination 2's server is killed mid-copy: exit exactly 2 within ${BOUND} s, destination 1 exact"
    run_and_kill 2 d2 --max-rate "$RATE" "$src" "$dl" "$NBD_URI"
    error_line_about "destination 2" || fail "no stderr line names destination 2 with an error"
    ! error_line_about "destination 1" || fail "stderr reports an error on destination 1"
    ! error_line_about source || fail "stderr reports a source error"
    one_connection_line "destination 2"
    expect_matches_model "destination 1 (loop)" "$dl" "$src_orig"
    local copied
    copied=$(count_copied_sectors "destination 2 (the dead export's file)" "$d2_img" 0 "$src_orig" 0 "$d2_orig" "$SECTORS")
    ((copied > 0 && copied < SECTORS)) || fail "the dead export got $copied of $SECTORS sectors: the kill was not mid-copy"
}

source_killed() {
    reset_all
    nbd_start nsrc -r file "$nsrc_img"
    local u_src=$NBD_URI
    nbd_start d2 file "$d2_img"
    check "the source's server is killed mid-copy: exit exactly 64 within ${BOUND} s"
    run_and_kill 64 nsrc --max-rate "$RATE" "$u_src" "$dl" "$NBD_URI:0"
    error_line_about source || fail "no stderr line names the source with an error"
    ! error_line_about "destination [0-9]" || fail "stderr reports a destination error"
    one_connection_line source
    local copied n=1 dev orig
    for dev in "$dl" "$d2_img"; do
        orig=$dl_orig
        [[ $dev == "$d2_img" ]] && orig=$d2_orig
        copied=$(count_copied_sectors "destination $n" "$dev" 0 "$nsrc_orig" 0 "$orig" "$SECTORS")
        ((copied > 0 && copied < SECTORS)) || fail "destination $n got $copied of $SECTORS sectors: the kill was not mid-copy"
        n=$((n + 1))
    done
}

source_killed_ignoring() {
    reset_all
    nbd_start nsrc -r file "$nsrc_img"
    local u_src=$NBD_URI
    nbd_start d2 file "$d2_img"
    check "the source's server is killed mid-copy, --ignore-errors: exit exactly 64 within ${BOUND} s"
    run_and_kill 64 nsrc --ignore-errors --json --max-rate "$RATE" "$u_src" "$dl" "$NBD_URI"
    expect_report 64 destinations.0.status=ok destinations.1.status=ok \
        destinations.0.sectors_written="$SECTORS" destinations.1.sectors_written="$SECTORS"
    error_line_about source || fail "no stderr line names the source with an error"
    one_connection_line source
    check "each destination: the source's sectors, and zeroes exactly where read errors are reported"
    "$PYTHON" - "$STDOUT_FILE" "$nsrc_orig" "$dl" "$d2_img" <<'PY' || fail "the destinations are not the source with zeroes exactly at the reported errors"
import os, sys
import json
report, src, *dests = sys.argv[1:]
errors = json.load(open(report))["source"]["errors"]
bad = bytearray(65536)
for e in errors:
    for i in range(e["sector"], e["sector"] + e["count"]):
        bad[i] = 1
nbad = sum(bad)
assert 0 < nbad < 65536, f"{nbad} sectors reported unreadable: the kill was not mid-copy"
# Once the server is dead no read succeeds: the errors must run to the last sector.
assert bad[-1], "the reported read errors stop before the end of the copy, after the server died"
s = open(src, "rb").read()
for n, dest in enumerate(dests, 1):
    fd = os.open(dest, os.O_RDONLY)
    d = os.pread(fd, 65536 * 512, 0)
    os.close(fd)
    for i in range(65536):
        got, want = d[i * 512:(i + 1) * 512], bytes(512) if bad[i] else s[i * 512:(i + 1) * 512]
        assert got == want, f"destination {n}: sector {i} is not {'zeroes' if bad[i] else 'the source sector'}"
    print(f"    destination {n}: {65536 - nbad} sectors of the source, {nbad} zeroed where errors are reported")
PY
}

run_case "destination server killed" destination_killed
run_case "source server killed" source_killed
run_case "source server killed, --ignore-errors" source_killed_ignoring

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
