#!/usr/bin/env bash
# NBD regions (nbd+unix:///?socket=PATH[:SECTOR[:COUNT]]) copy byte-exact, as
# sources and as destinations, mixed with loop devices:
#   - loop device -> nbdkit file, with a source range and a destination offset
#     (and the URI's fields in sectors, 0x hex and suffixes): exactly those
#     sectors of the served file change, the bytes around them do not;
#   - nbdkit file (read-only export) -> loop device, whole (the size comes from
#     the server) and as a range;
#   - one copy to two NBD destinations and a loop device, all exact;
#   - NBD -> NBD;
#   - --dry-run with URIs: exit 0, the plan names the URI, nothing is written;
#   - the data options on an NBD destination (write-zeroes and read-back
#     paths): --verify, --sparse (a source with a run of zeroes), --zero.
# The served files are checked directly (nbdkit's file plugin writes them in
# place) and, once, through the server with nbdcopy.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/nbd_lib.sh"
need_root
need_kcopy
need_nbdkit
need_python

src_img=$(make_image src.img 32M) # 65536 sectors, a loop device
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
nsrc_img=$(make_image nsrc.img 32M) # served read-only by nbdkit
nsrc_orig=$(pristine_copy "$nsrc_img")
d1_img=$(make_image d1.img 40M) # 81920 sectors, served by nbdkit
d1_orig=$(pristine_copy "$d1_img")
d2_img=$(make_image d2.img 40M) # served by nbdkit
d2_orig=$(pristine_copy "$d2_img")
dl_img=$(make_image dl.img 32M) # a loop destination
dl_orig=$(pristine_copy "$dl_img")
dl=$(attach "$dl_img")

nbd_start nsrc -r file "$nsrc_img"
u_src=$NBD_URI
nbd_start d1 file "$d1_img"
u_d1=$NBD_URI
nbd_start d2 file "$d2_img"
u_d2=$NBD_URI

check "the fixtures: nbdinfo sees the exports' sizes, the source export is read-only"
[[ $(nbdinfo --size "$u_src") == $((32 << 20)) ]] || fail "nbdinfo --size $u_src is not 32 MiB"
[[ $(nbdinfo --size "$u_d1") == $((40 << 20)) ]] || fail "nbdinfo --size $u_d1 is not 40 MiB"
nbdinfo "$u_src" | grep -q 'is_read_only: true' || fail "$u_src is not read-only"

reset_all() {
    restore_file "$d1_img" "$d1_orig"
    restore_file "$d2_img" "$d2_orig"
    restore_device "$dl" "$dl_orig"
}

# expected_model ORIG SRC SRC_SECTOR DST_SECTOR COUNT: a fresh model (a copy of
# ORIG with the copy applied); prints its path.
expected_model() {
    local m
    m=$(mktemp "$SCRATCH/expected.XXXXXX")
    cp -- "$1" "$m" || fail "cannot copy $1"
    model_copy "$m" "$2" "$3" "$4" "$5"
    printf '%s\n' "$m"
}

loop_to_nbd_range() {
    reset_all
    check "loop -> NBD: kcopy $src:2048:16M $u_d1:5000 copies 32768 sectors to sector 5000 of the served file"
    kcopy_ok "$src:2048:16M" "$u_d1:5000"
    expect_same_sectors "the range" "$d1_img" 5000 "$src_orig" 2048 32768
    expect_same_sectors "the sector just before" "$d1_img" 4999 "$d1_orig" 4999 1
    expect_same_sectors "the sector just after" "$d1_img" $((5000 + 32768)) "$d1_orig" $((5000 + 32768)) 1
    expect_matches_model "the whole served file" "$d1_img" "$(expected_model "$d1_orig" "$src_orig" 2048 5000 32768)"
    expect_matches_model "the source" "$src" "$src_orig"

    reset_all
    check "loop -> NBD, fields in 0x hex and suffixes, a COUNT on the destination: $src:0x800:0x3e8 $u_d1:1M:1000"
    kcopy_ok "$src:0x800:0x3e8" "$u_d1:1M:1000"
    expect_matches_model "the whole served file" "$d1_img" "$(expected_model "$d1_orig" "$src_orig" 2048 2048 1000)"

    reset_all
    check "loop -> NBD, the whole source by default, to the end of the export: $src $u_d1:16384"
    kcopy_ok "$src" "$u_d1:16384"
    expect_matches_model "the whole served file" "$d1_img" "$(expected_model "$d1_orig" "$src_orig" 0 16384 65536)"
    check "the same read back through the server (nbdcopy) equals the file"
    nbd_fetch "$u_d1" "$SCRATCH/fetched.img"
    cmp -- "$SCRATCH/fetched.img" "$d1_img" || fail "nbdcopy reads other bytes than the served file holds"
}

nbd_to_loop() {
    reset_all
    check "NBD -> loop, whole: kcopy --json $u_src $dl (size from the server: 65536 sectors)"
    expect_status 0 "$KCOPY" --json "$u_src" "$dl"
    expect_report 0 source.count=65536 source.sector=0 destinations.0.status=ok \
        destinations.0.sectors_written=65536 bytes=33554432 source.argument="$u_src"
    expect_matches_model "the loop device" "$dl" "$nsrc_orig"

    reset_all
    check "NBD -> loop, a range: kcopy $u_src:1000:8M $dl:300"
    kcopy_ok "$u_src:1000:8M" "$dl:300"
    expect_matches_model "the loop device" "$dl" "$(expected_model "$dl_orig" "$nsrc_orig" 1000 300 16384)"
    check "the source file is unchanged"
    cmp -s -- "$nsrc_img" "$nsrc_orig" || fail "the served source changed"
}

fan_out() {
    reset_all
    check "one copy to two NBD destinations and a loop device: kcopy $src:100:60000 $u_d1 $dl:7 $u_d2:4096"
    expect_status 0 "$KCOPY" --json "$src:100:60000" "$u_d1" "$dl:7" "$u_d2:4096"
    expect_report 0 destinations.0.status=ok destinations.1.status=ok destinations.2.status=ok \
        destinations.0.sectors_written=60000 destinations.2.sectors_written=60000
    expect_matches_model "destination 1 (NBD)" "$d1_img" "$(expected_model "$d1_orig" "$src_orig" 100 0 60000)"
    expect_matches_model "destination 2 (loop)" "$dl" "$(expected_model "$dl_orig" "$src_orig" 100 7 60000)"
    expect_matches_model "destination 3 (NBD)" "$d2_img" "$(expected_model "$d2_orig" "$src_orig" 100 4096 60000)"
}

nbd_to_nbd() {
    reset_all
    check "NBD -> NBD and a loop device: kcopy $u_src:0:16M $u_d1:100 $dl"
    kcopy_ok "$u_src:0:16M" "$u_d1:100" "$dl"
    expect_matches_model "destination 1 (NBD)" "$d1_img" "$(expected_model "$d1_orig" "$nsrc_orig" 0 100 32768)"
    expect_matches_model "destination 2 (loop)" "$dl" "$(expected_model "$dl_orig" "$nsrc_orig" 0 0 32768)"
    expect_matches_model "the untouched NBD export" "$d2_img" "$d2_orig"
}

dry_run() {
    reset_all
    check "--dry-run loop -> NBD: exit 0, the plan names the URI, the served file is unchanged"
    expect_status 0 "$KCOPY" --dry-run "$src:2048:1000" "$u_d1:5000"
    grep -qF -- "$u_d1" "$STDOUT_FILE" || { sed 's/^/    stdout: /' "$STDOUT_FILE"; fail "the plan does not name $u_d1"; }
    expect_matches_model "the served file after a dry run" "$d1_img" "$d1_orig"

    check "-n NBD -> loop and NBD: exit 0, nothing written anywhere"
    expect_status 0 "$KCOPY" -n "$u_src" "$dl" "$u_d2:0:65536"
    grep -qF -- "$u_src" "$STDOUT_FILE" || fail "the plan does not name $u_src"
    expect_matches_model "the loop device after a dry run" "$dl" "$dl_orig"
    expect_matches_model "the NBD destination after a dry run" "$d2_img" "$d2_orig"

    check "--dry-run --json with a URI: a plan report, nothing written"
    expect_status 0 "$KCOPY" -n --json "$src" "$u_d1"
    expect_report 0 dry_run=true destinations.0.argument="$u_d1" bytes=0 destinations.0.status=not_written \
        destinations.0.sectors_written=0 destinations.0.would_create=false source.count=65536
    expect_matches_model "the served file after a dry run" "$d1_img" "$d1_orig"

    check "a real run after the dry runs works"
    kcopy_ok "$src:2048:1000" "$u_d1:5000"
    expect_matches_model "the served file" "$d1_img" "$(expected_model "$d1_orig" "$src_orig" 2048 5000 1000)"
}

data_options() {
    reset_all
    check "--verify to an NBD destination: kcopy --verify $src:0:20000 $u_d1:300 exits 0, exact"
    kcopy_ok --verify "$src:0:20000" "$u_d1:300"
    expect_matches_model "the served file" "$d1_img" "$(expected_model "$d1_orig" "$src_orig" 0 300 20000)"

    reset_all
    local holey=$SCRATCH/holey.img
    cp -- "$src_orig" "$holey"
    dd if=/dev/zero of="$holey" bs=1M seek=3 count=5 conv=notrunc status=none || fail "cannot zero $holey"
    check "--sparse to an NBD destination: 5 MiB of zeroes in the source arrive as zeroes, the rest exact"
    kcopy_ok --sparse "$holey" "$u_d1:8"
    expect_matches_model "the served file" "$d1_img" "$(expected_model "$d1_orig" "$holey" 0 8 65536)"

    reset_all
    check "--zero on NBD exports: kcopy --zero $u_d1:100:1000 $u_d2:0x10:1000 $dl:5:1000 exits 0"
    kcopy_ok --zero "$u_d1:100:1000" "$u_d2:0x10:1000" "$dl:5:1000"
    local m
    m=$(expected_model "$d1_orig" /dev/zero 0 100 1000)
    expect_matches_model "destination 1 (NBD)" "$d1_img" "$m"
    m=$(expected_model "$d2_orig" /dev/zero 0 16 1000)
    expect_matches_model "destination 2 (NBD)" "$d2_img" "$m"
    m=$(expected_model "$dl_orig" /dev/zero 0 5 1000)
    expect_matches_model "destination 3 (loop)" "$dl" "$m"
}

run_case "loop device -> NBD, ranges" loop_to_nbd_range
run_case "NBD -> loop device" nbd_to_loop
run_case "fan-out to two NBD exports and a loop device" fan_out
run_case "NBD -> NBD" nbd_to_nbd
run_case "--dry-run with URIs" dry_run
run_case "--verify, --sparse and --zero on NBD destinations" data_options

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
