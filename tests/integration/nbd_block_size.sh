#!/usr/bin/env bash
# An NBD export with a 4096-byte minimum block size (nbdkit
# --filter=blocksize-policy blocksize-minimum=4096
# blocksize-error-policy=error: the server refuses any request not aligned to
# 4096 bytes) copies unaligned ranges exactly, as a 4Kn loop device does: the
# unaligned head and tail are read-modify-written, never reported as bad
# sectors (issue 18, bug 4):
#   - into the export: kcopy SRC:1:7 URI:3 and a long range whose source and
#     destination are aligned differently (every sub-job boundary inside a
#     4 KiB block of the export, neighbouring sub-jobs sharing it): exit 0,
#     the range exact, every other byte of the served file untouched (the rest
#     of the blocks the range shares too); read back through the server
#     (nbdcopy) the same;
#   - out of it: kcopy URI:5:7 FILE and a long unaligned range: exit 0, exact;
#   - --zero URI:9:5 and a long unaligned --zero: exit 0, exactly those zero;
#   - --ignore-errors --mapfile: exit 0, the range '+', no '-' area;
#   - --dry-run says what the real run does: exit 0 (and names the block size);
#   - a real bad area (nbdkit's ddrescue filter under the same policy) is
#     still reported for exactly the sectors asked of its failing blocks.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/nbd_lib.sh"
need_root
need_kcopy
need_nbdkit

SECTORS=16384 # 8 MiB images
src_img=$(make_image src.img 8M)
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
exp_img=$(make_image exp.img 8M) # served by nbdkit with a 4096-byte minimum block
exp_orig=$(pristine_copy "$exp_img")
out_img=$(make_image out.img 8M) # a file destination
out_orig=$(pristine_copy "$out_img")
bad_img=$(make_image bad.img 8M) # served read-only, with a bad area

policy=(--filter=blocksize-policy)
policy_args=(blocksize-minimum=4096 blocksize-error-policy=error)
nbd_start exp "${policy[@]}" file "$exp_img" "${policy_args[@]}"
u_exp=$NBD_URI

check "the fixture: the export advertises a 4096-byte minimum block"
nbdinfo "$u_exp" | grep -Eq 'block_size_minimum: 4096' || fail "nbdinfo does not show block_size_minimum: 4096"

reset_all() {
    restore_file "$exp_img" "$exp_orig"
    cp -- "$out_orig" "$out_img"
}

# expected_model ORIG SRC SRC_SECTOR DST_SECTOR COUNT: a fresh model (ORIG
# with the copy applied; SRC /dev/zero for zeroing); prints its path.
expected_model() {
    local m
    m=$(mktemp "$SCRATCH/expected.XXXXXX")
    cp -- "$1" "$m" || fail "cannot copy $1"
    model_copy "$m" "$2" "$3" "$4" "$5"
    printf '%s\n' "$m"
}

# expect_around WHAT FILE ORIG SECTOR COUNT: the sectors of FILE that share a
# 4 KiB block with the range (and at least one on each side) are ORIG's.
expect_around() {
    local what=$1 file=$2 orig=$3 s=$4 n=$5 lo hi
    lo=$((s / 8 * 8))
    ((lo < s)) || lo=$((s - 1))
    ((lo >= 0)) || lo=0
    hi=$(((s + n + 7) / 8 * 8))
    ((hi > s + n)) || hi=$((s + n + 1))
    ((s > lo)) && expect_same_sectors "$what: sectors $lo..$((s - 1)) before the range" "$file" "$lo" "$orig" "$lo" $((s - lo))
    expect_same_sectors "$what: sectors $((s + n))..$((hi - 1)) after the range" "$file" $((s + n)) "$orig" $((s + n)) \
        $((hi - s - n))
}

into_export() {
    reset_all
    check "kcopy $src:1:7 $u_exp:3 exits 0: sectors 3-9 of the export are source sectors 1-7, nothing else changes"
    kcopy_ok "$src:1:7" "$u_exp:3"
    expect_same_sectors "the range" "$exp_img" 3 "$src_orig" 1 7
    expect_around "the export" "$exp_img" "$exp_orig" 3 7
    expect_matches_model "the whole served file" "$exp_img" "$(expected_model "$exp_orig" "$src_orig" 1 3 7)"

    reset_all
    check "kcopy --io-size 16K $src:5:9000 $u_exp:4099 (every sub-job's ends inside a 4 KiB block of the export) exits 0, exact"
    kcopy_ok --io-size 16K "$src:5:9000" "$u_exp:4099"
    expect_around "the export" "$exp_img" "$exp_orig" 4099 9000
    expect_matches_model "the whole served file" "$exp_img" "$(expected_model "$exp_orig" "$src_orig" 5 4099 9000)"
    check "the same, read back through the server (nbdcopy)"
    nbd_fetch "$u_exp" "$SCRATCH/fetched.img"
    cmp -- "$SCRATCH/fetched.img" "$exp_img" || fail "nbdcopy reads other bytes than the served file holds"
}

out_of_export() {
    reset_all
    check "kcopy $u_exp:5:7 $out_img exits 0: the file's sectors 0-6 are the export's 5-11"
    kcopy_ok "$u_exp:5:7" "$out_img"
    expect_matches_model "the file" "$out_img" "$(expected_model "$out_orig" "$exp_orig" 5 0 7)"

    reset_all
    check "kcopy --io-size 16K $u_exp:9:12345 $out_img:13 exits 0, exact"
    kcopy_ok --io-size 16K "$u_exp:9:12345" "$out_img:13"
    expect_matches_model "the file" "$out_img" "$(expected_model "$out_orig" "$exp_orig" 9 13 12345)"
    check "the export is unchanged"
    expect_matches_model "the served file" "$exp_img" "$exp_orig"
}

zeroing() {
    reset_all
    check "kcopy --zero $u_exp:9:5 exits 0: exactly sectors 9-13 are zero"
    kcopy_ok --zero "$u_exp:9:5"
    expect_zero_sectors "the range" "$exp_img" 9 5
    expect_around "the export" "$exp_img" "$exp_orig" 9 5
    expect_matches_model "the whole served file" "$exp_img" "$(expected_model "$exp_orig" /dev/zero 0 9 5)"

    reset_all
    check "kcopy --zero --io-size 16K $u_exp:3:10001 exits 0, exact"
    kcopy_ok --zero --io-size 16K "$u_exp:3:10001"
    expect_around "the export" "$exp_img" "$exp_orig" 3 10001
    expect_matches_model "the whole served file" "$exp_img" "$(expected_model "$exp_orig" /dev/zero 0 3 10001)"
}

mapfile() {
    reset_all
    local map=$SCRATCH/out.map pos size status bad=0 done=0
    rm -f -- "$map"
    check "kcopy --ignore-errors --mapfile MAP $u_exp:5:7 $out_img exits 0; MAP has the range '+' and no '-' area"
    kcopy_ok --ignore-errors --mapfile "$map" "$u_exp:5:7" "$out_img"
    expect_matches_model "the file" "$out_img" "$(expected_model "$out_orig" "$exp_orig" 5 0 7)"
    while read -r pos size status; do
        [[ $status == - ]] && bad=1
        [[ $status == + ]] && done=$((done + size))
    done < <(grep -v '^#' "$map" | awk 'NF == 3')
    ((bad == 0)) || { sed 's/^/    mapfile: /' "$map"; fail "the mapfile has a bad ('-') area"; }
    ((done == 7 * 512)) || { sed 's/^/    mapfile: /' "$map"; fail "the mapfile's finished areas are $done bytes, not 3584"; }
}

dry_run() {
    reset_all
    check "kcopy --dry-run $src:1:7 $u_exp:3 exits 0, names the 4096-byte block, writes nothing; the real run then exits 0 too"
    expect_status 0 "$KCOPY" --dry-run "$src:1:7" "$u_exp:3"
    grep -q 'NBD export .*logical block 4096 bytes' "$STDOUT_FILE" ||
        { sed 's/^/    stdout: /' "$STDOUT_FILE"; fail "the plan does not give the export's 4096-byte block"; }
    expect_matches_model "the served file after a dry run" "$exp_img" "$exp_orig"
    kcopy_ok "$src:1:7" "$u_exp:3"
}

bad_blocks() {
    # Sectors 4001-4008 unreadable: they touch the 4 KiB blocks of sectors
    # 4000-4007 and 4008-4015, which the server (reading whole blocks) fails.
    local map=$SCRATCH/bad.map
    printf '# Mapfile. Created by GNU ddrescue version 1.27\n0x0     +               1\n0x%08X  0x%08X  +\n0x%08X  0x%08X  -\n0x%08X  0x%08X  +\n' \
        0 $((4001 * 512)) $((4001 * 512)) $((8 * 512)) $((4009 * 512)) $(((SECTORS - 4009) * 512)) >"$map"
    nbd_start bad -r "${policy[@]}" --filter=ddrescue file "$bad_img" ddrescue-mapfile="$map" "${policy_args[@]}"
    local u_bad=$NBD_URI
    reset_all
    check "kcopy --ignore-errors $u_bad:4004:100 $out_img exits 64, reporting exactly sectors 4004-4015 (the part asked of the two bad blocks)"
    expect_status 64 "$KCOPY" --ignore-errors "$u_bad:4004:100" "$out_img"
    grep -F " read error" "$STDERR_FILE" >"$SCRATCH/got.txt" || true
    diff -u --label expected --label stderr <(bad_range_line source "$u_bad" 4004 4015) "$SCRATCH/got.txt" >&2 ||
        fail "the read errors reported are not exactly sectors 4004-4015 (diff above)"
    local m
    m=$(expected_model "$out_orig" "$bad_img" 4004 0 100)
    model_zero "$m" 0 12
    expect_matches_model "the file (the bad sectors zero)" "$out_img" "$m"
}

run_case "unaligned copies into the export" into_export
run_case "unaligned copies out of the export" out_of_export
run_case "unaligned --zero" zeroing
run_case "--ignore-errors --mapfile" mapfile
run_case "--dry-run" dry_run
run_case "a real bad area is reported for the sectors asked" bad_blocks

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
