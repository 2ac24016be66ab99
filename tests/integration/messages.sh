#!/usr/bin/env bash
# Messages a user can act on (issue 19, items 9-11 and 13): each case checks the
# exact line and exit status a user sees, on regular files in the scratch dir.
#   - a dangling symlink as destination creates the file it points to (as cp
#     and dd do); the dry run names that file; a refused copy removes it and
#     leaves the link;
#   - a source truncated during the copy: "the source ended early at sector N
#     (it is now N sectors long)", exit 64, not an I/O error;
#   - a path that begins with '-' gets the way out (./PATH or --), and -- works;
#   - small things: "1 sector", the fraction hint computed from the value typed,
#     --mapfile-interval too large, -v's sub-jobs in flight, --io-engine auto
#     and no CLI11 leftovers in --help, consistent figures for an unaligned
#     mapfile, the --write-seq overlap refusal names the destination.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kcopy

cd "$SCRATCH" # short relative names in the messages
make_image src.img 1M >/dev/null
src_orig=$(pristine_copy src.img)

# expect_stderr_line LINE: the last stderr has exactly this line.
expect_stderr_line() {
    grep -qxF -- "$1" "$STDERR_FILE" || fail "stderr lacks the line: $1"
}

# refused_with LINE ARGS...: kcopy ARGS exits 128 with exactly the one line LINE.
refused_with() {
    local line=$1
    shift
    expect_status 128 "$KCOPY" "$@"
    expect_one_error_line
    expect_stderr_line "$line"
}

dangling_symlink() {
    check "a dangling symlink as destination: the file it points to is created and holds the copy"
    ln -s target.img link.img
    kcopy_ok src.img link.img
    [[ -L link.img && -f target.img ]] || fail "link.img is not a symlink to a new target.img"
    expect_matches_model "target.img" target.img "$src_orig"

    check "the dry run says it would create the file the link points to, and creates nothing"
    ln -s sub/../target2.img link2.img
    mkdir sub
    expect_status 0 "$KCOPY" -n src.img link2.img
    grep -qF "regular file, would be created as 'sub/../target2.img' (where the symlink leads) with 1048576 bytes" \
        "$STDOUT_FILE" || fail "the dry run does not name the symlink's target: $(cat "$STDOUT_FILE")"
    [[ ! -e target2.img ]] || fail "the dry run created target2.img"

    check "a refused copy removes the file it created where the link points, and keeps the link"
    expect_status 128 "$KCOPY" src.img link2.img sub
    [[ -L link2.img && ! -e target2.img ]] || fail "after the refusal: link2.img gone or target2.img left behind"
}

source_shrinks() {
    check "a source truncated to 24 MiB during the copy: exit 64, 'the source ended early at sector 49152'"
    make_image shrink.img 32M >/dev/null
    printf '  $ kcopy --json --max-rate 8M shrink.img out.img &   # truncated to 24M after 1 s\n'
    local rc=0
    timeout -k 5 60 "$KCOPY" --json --max-rate 8M shrink.img out.img >"$STDOUT_FILE" 2>"$STDERR_FILE" </dev/null &
    _CHILD_PID=$!
    sleep 1
    truncate -s 24M shrink.img
    wait "$_CHILD_PID" || rc=$?
    _CHILD_PID=
    sed 's/^/    stderr: /' "$STDERR_FILE"
    ((rc == 64)) || fail "exit status $rc, want 64"
    expect_stderr_line "kcopy: source 'shrink.img': the source ended early at sector 49152 (it is now 49152 sectors long)"
    expect_stderr_lacks "Input/output error" "read error"
    check "the JSON report: the source's first error range starts at sector 49152, ENODATA"
    python3 -c 'import json, sys; e = json.load(open(sys.argv[1]))["source"]["errors"][0]
assert (e["sector"], e["error"], e["message"]) == (49152, "ENODATA", "ended before these sectors"), e' "$STDOUT_FILE" ||
        fail "the JSON report does not give the source's end as ENODATA at sector 49152"
}

dash_path() {
    cp src.img ./-src.img
    check "a path that begins with '-' is refused with the way out"
    refused_with "kcopy: '-src.img' is not an option (see --help); to name a file that begins with '-', write ./-src.img or put -- before the regions" \
        -src.img x.img
    [[ ! -e x.img ]] || fail "x.img was created"
    check "-- before the regions copies it"
    kcopy_ok -- -src.img x.img
    expect_matches_model "x.img" x.img "$src_orig"
}

one_sector() {
    check "one sector is '1 sector' (dry run, -v)"
    expect_status 0 "$KCOPY" -n src.img:0:1 one.img
    grep -qF "'src.img': sectors 0-0 (1 sector, 512 bytes" "$STDOUT_FILE" ||
        fail "the dry run does not say '1 sector': $(cat "$STDOUT_FILE")"
    expect_status 0 "$KCOPY" -v src.img:0:1 one.img
    expect_stderr_has "copied 1 sector to 1 destination(s)"
}

in_flight() {
    expect_status 0 "$KCOPY" -v src.img:0:1 one.img
    check "-v says how many sub-jobs can really be in flight"
    expect_stderr_has "; up to 1 sub-job in flight"
    expect_status 0 "$KCOPY" -v src.img:0:2048 one.img # 2 sub-jobs of 512 KiB
    expect_stderr_has "; up to 2 sub-jobs in flight"
}

fraction_hint() {
    check "a fraction: the hint is computed from the value typed"
    refused_with "kcopy: --io-size '1.5K' has a fraction; write a whole number in a smaller unit: 3s or 1536, not 1.5K" \
        --io-size 1.5K src.img one.img
    refused_with "kcopy: source 'src.img:1.5K': SECTOR '1.5K' has a fraction; write a whole number in a smaller unit: 3s, not 1.5K" \
        src.img:1.5K one.img
    refused_with "kcopy: source 'src.img:0:1.25M': COUNT '1.25M' has a fraction; write a whole number in a smaller unit: 1280K, not 1.25M" \
        src.img:0:1.25M one.img
}

mapfile_interval() {
    check "--mapfile-interval 1e308 is too long, and says the limit"
    refused_with "kcopy: --mapfile-interval: '1e308' is too long: at most 1000000000 seconds (about 31 years) (see --help)" \
        --mapfile-interval 1e308 --mapfile m.map src.img one.img
}

help_text() {
    check "--help documents --io-engine auto and has no CLI11 leftovers"
    expect_status 0 "$KCOPY" --help
    grep -qF "io_uring, libaio, sync, or auto (the default" "$STDOUT_FILE" || fail "--help does not document auto"
    ! grep -E "Needs:|\{false\}|:UINT|in \[1 - 100\]" "$STDOUT_FILE" || fail "--help shows CLI11 leftovers"
    grep -qE "^  --mapfile-interval SECONDS +rewrite" "$STDOUT_FILE" || fail "--mapfile-interval's line is not clean"
    grep -qE "^  --throttle PERCENT +keep" "$STDOUT_FILE" || fail "--throttle's line is not clean"
    grep -qE "^  --progress,--no-progress +show" "$STDOUT_FILE" || fail "--progress's line is not clean"
}

unaligned_mapfile() {
    check "an unaligned mapfile: the figures add up"
    make_image big.img 8M >/dev/null
    printf '0x0 ? 1\n0x0 0x101 +\n0x101 0x7FFEFF ?\n' >u.map
    expect_status 0 "$KCOPY" --mapfile u.map big.img y.img
    expect_stderr_line "kcopy: mapfile 'u.map': 0 of 8388608 bytes already copied (257 finished bytes share sectors with unfinished ones); copying the other 8388608 bytes"
}

write_seq_names_destination() {
    check "the --write-seq overlap refusal names the destination (copy and dry run)"
    make_image big2.img 1M >/dev/null
    local before
    before=$(sha256sum <big2.img)
    local line="kcopy: destination 1 'big2.img': overlaps the source from above, which needs descending writes; --write-seq writes in ascending order (copy without --write-seq, or to another place)"
    refused_with "$line" --write-seq big2.img:0:100 big2.img:50
    refused_with "$line" -n --write-seq big2.img:0:100 big2.img:50
    [[ $(sha256sum <big2.img) == "$before" ]] || fail "big2.img changed"
}

run_case "a dangling symlink as destination" dangling_symlink
run_case "a source that shrinks during the copy" source_shrinks
run_case "a path that begins with '-'" dash_path
run_case "one sector is '1 sector'" one_sector
run_case "-v: the sub-jobs really in flight" in_flight
run_case "the fraction hint is computed" fraction_hint
run_case "--mapfile-interval too large" mapfile_interval
run_case "--help: auto documented, no CLI11 leftovers" help_text
run_case "an unaligned mapfile's figures" unaligned_mapfile
run_case "the --write-seq overlap refusal names the destination" write_seq_names_destination

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
