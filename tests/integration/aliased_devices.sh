#!/usr/bin/env bash
# Two names of the same bytes (issue 7, row 7): a loop device and its own backing
# file, a partition and its whole disk. kcopy sees that their ranges overlap and
# applies the overlap rules of one device: a copy between them is memmove (the
# whole backing image equals the reference afterwards), and destinations that
# overlap each other or the source from opposite sides are refused (128,
# nothing changed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python

img=$(make_image backing.img 8M) # 16384 sectors
orig=$(pristine_copy "$img")
loop=$(attach "$img")
expected=$SCRATCH/expected.img

# put_back: the backing image as it was (through the file: the loop device then
# reads it again, with its page cache dropped).
put_back() {
    dd if="$orig" of="$img" bs=1M conv=notrunc,fsync status=none
    blockdev --flushbufs "$loop"
}

# memmove_case LABEL SRC SRC_SECTOR COUNT DEST DEST_SECTOR MEDIUM_SRC MEDIUM_DEST [KCOPY OPTIONS...]:
# copy between two names of one medium; afterwards the whole medium (IMAGE)
# equals the memmove reference in the medium's own sectors.
memmove_case() {
    local label=$1 s=$2 ss=$3 n=$4 d=$5 ds=$6 ms=$7 md=$8 image=${9} base=${10}
    shift 10
    check "$label"
    expect_status 0 "$KCOPY" "$@" "$s:$ss:$n" "$d:$ds"
    blockdev --flushbufs "$loop"
    reference copy "$base" "$ms" "$n" "$base" "$expected" "$md" || fail "reference.py failed"
    expect_matches_model "$label: the whole medium" "$image" "$expected"
}

loop_and_backing_file() {
    put_back
    memmove_case "loop device -> its backing file 100 sectors up: memmove" \
        "$loop" 0 4000 "$img" 100 0 100 "$img" "$orig"
    put_back
    memmove_case "backing file -> its loop device 100 sectors down: memmove" \
        "$img" 100 4000 "$loop" 0 100 0 "$img" "$orig"
    put_back
    # One sub-job in flight: read, write, read the next... an ascending copy
    # would overwrite source sectors before reading them.
    memmove_case "loop device -> its backing file 100 sectors up, one sub-job at a time: memmove" \
        "$loop" 0 4000 "$img" 100 0 100 "$img" "$orig" --pages 128
    put_back
    memmove_case "the same with --buffered and small sub-jobs" \
        "$loop" 0 4000 "$img" 100 0 100 "$img" "$orig" --buffered --io-size 64K --pages 16
}

loop_and_backing_file_refusals() {
    put_back
    check "the loop device's range is the backing file's range itself: refused"
    expect_status 128 "$KCOPY" "$loop:0:100" "$img:0"
    expect_one_error_line
    expect_stderr_has "is the source range itself"
    check "two destinations, one through the loop device, one through the file, overlapping: refused"
    expect_status 128 "$KCOPY" "$loop:8000:1000" "$loop:0" "$img:500"
    expect_one_error_line
    expect_stderr_has "overlaps destination 1"
    check "destinations overlapping the source from opposite sides through both names: refused"
    expect_status 128 "$KCOPY" "$loop:4000:1000" "$loop:4900" "$img:3100"
    expect_one_error_line
    expect_stderr_has "overlap the source from opposite sides"
    expect_matches_model "after the refusals" "$img" "$orig"
}

partition_and_whole_disk() {
    command -v sfdisk >/dev/null && command -v partx >/dev/null || skip "sfdisk/partx not installed"
    local dimg dorig disk p1 i
    dimg=$(make_image disk.img 16M)
    printf 'label: dos\nstart=2048, size=8192\nstart=10240, size=20000\n' | sfdisk -q "$dimg" || fail "sfdisk failed"
    dorig=$(pristine_copy "$dimg")
    disk=$(attach "$dimg" -P)
    partx -a "$disk" 2>/dev/null || true
    for i in $(seq 50); do [[ -b ${disk}p1 ]] && break; sleep 0.1; done
    [[ -b ${disk}p1 ]] || skip "no partition devices for $disk"
    p1=${disk}p1
    check "partition 1 -> its whole disk 100 sectors up (at 2148), one sub-job at a time: memmove"
    expect_status 0 "$KCOPY" --pages 128 "$p1:0:4000" "$disk:2148"
    reference copy "$dorig" 2048 4000 "$dorig" "$expected" 2148 || fail "reference.py failed"
    expect_matches_model "the whole disk" "$disk" "$expected"
    check "a range of the disk image file -> partition 1 of the loop device over it: memmove through two levels"
    cp "$expected" "$SCRATCH/before.img"
    expect_status 0 "$KCOPY" "$dimg:2048:100" "$p1:50"
    reference copy "$SCRATCH/before.img" 2048 100 "$SCRATCH/before.img" "$expected" 2098 || fail "reference.py failed"
    expect_matches_model "the whole disk" "$disk" "$expected"
    check "partition 1's first sector is the disk's sector 2048: the same range, refused"
    expect_status 128 "$KCOPY" "$p1:0:100" "$disk:2048"
    expect_one_error_line
    expect_stderr_has "is the source range itself"
}

run_case "a loop device and its backing file" loop_and_backing_file
run_case "a loop device and its backing file: refusals" loop_and_backing_file_refusals
run_case "a partition and its whole disk" partition_and_whole_disk

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
