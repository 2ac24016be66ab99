#!/usr/bin/env bash
# A source with an unreadable sector (a loop device over a FUSE faulty disk)
# stops the copy by default: exit status exactly 64 (no destination bit, for one
# destination and for two), stderr names the source and a failed range that
# contains the bad sector, and every destination holds, sector by sector, either
# the source's data or its own old data: exactly as many source sectors as kcopy
# says it wrote, nothing else, and nothing outside the destination range.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_faulty_disk

SECTORS=65536 # 32 MiB source
BAD=30001     # the one unreadable sector, mid-copy, not on a sub-job boundary

src_img=$(make_image src.img 32M)
d1_img=$(make_image d1.img 40M)
d2_img=$(make_image d2.img 40M)
src_orig=$(pristine_copy "$src_img")
d1_orig=$(pristine_copy "$d1_img")
d2_orig=$(pristine_copy "$d2_img")
src=$(faulty_device "$src_img" --read-error "$BAD:1")
d1=$(attach "$d1_img")
d2=$(attach "$d2_img")

check "the fixture: sector $BAD of $src fails with EIO, its neighbours read"
for s in $((BAD - 1)) $BAD $((BAD + 1)); do
    if dd if="$src" of=/dev/null iflag=direct bs=512 skip="$s" count=1 status=none 2>/dev/null; then
        ((s != BAD)) || fail "fixture: sector $s of $src reads, should fail"
    else
        ((s == BAD)) && continue
        fail "fixture: sector $s of $src fails, should read"
    fi
done

# max_failed_width IO_SECTORS: the widest range one failed read can report:
# one sub-job, or as many whole sub-jobs as the block layer merges into one
# request to the source (its max_sectors_kb): a merged request fails as a
# whole, and each of its sub-jobs with it (seen with --io-size 64K on a loop
# device: two 64 KiB sub-jobs reported as one 256-sector range).
max_failed_width() {
    local io=$1 kb merged
    kb=$(cat "/sys/block/$(basename -- "$src")/queue/max_sectors_kb")
    merged=$((kb * 2 / io * io))
    echo $((merged > io ? merged : io))
}

# expect_read_error_lines IO_SECTORS FIRST LAST: stderr has at least one line
# "kcopy: source 'SRC': read error at sectors A-B (N sectors): Input/output error",
# and every such line has N = B-A+1, no wider than what one failed request can
# take down (max_failed_width), lies in [FIRST, LAST], and contains the bad
# sector (the only one that fails); no destination is said to have failed.
expect_read_error_lines() {
    local max first=$2 last=$3 a b n lines=0
    max=$(max_failed_width "$1")
    while read -r a b n; do
        lines=$((lines + 1))
        ((n == b - a + 1)) || fail "read error line $a-$b says $n sectors"
        ((a <= BAD && BAD <= b)) || fail "reported read error $a-$b does not contain bad sector $BAD"
        ((n <= max)) || fail "reported read error $a-$b is wider ($n sectors) than one failed request can be ($max)"
        ((first <= a && b <= last)) || fail "reported read error $a-$b lies outside the source range $first-$last"
        grep -qxF -- "$(bad_range_line source "$src" "$a" "$b")" "$STDERR_FILE" ||
            fail "read error line for $a-$b is not exactly: $(bad_range_line source "$src" "$a" "$b")"
    done < <(reported_ranges read source "$src")
    ((lines >= 1)) || fail "no stderr line 'kcopy: source '$src': read error at sectors A-B (N sectors): Input/output error'"
    ! stderr_line_with "destination [0-9]" "[Ee]rror" || fail "stderr reports a destination error; only the source failed"
}

# expect_partial_copy N DEV DEV_ORIG DEV_SECTOR SRC_SECTOR COUNT: DEV is
# destination N of a copy of COUNT source sectors from SRC_SECTOR to DEV_SECTOR
# that stopped: outside the range DEV is untouched; inside, each sector is the
# source's or DEV's old one, the bad sector is the old one, and the number of
# source sectors is exactly what kcopy reports ("N of T sectors written").
expect_partial_copy() {
    local n=$1 dev=$2 orig=$3 ds=$4 ss=$5 count=$6 copied written re size
    size=$(size_sectors "$dev")
    expect_same_sectors "destination $n: sectors before the range" "$dev" 0 "$orig" 0 "$ds"
    expect_same_sectors "destination $n: sectors after the range" "$dev" $((ds + count)) "$orig" $((ds + count)) \
        $((size - ds - count))
    copied=$(count_copied_sectors "destination $n" "$dev" "$ds" "$src_orig" "$ss" "$orig" "$count")
    expect_same_sectors "destination $n: the sector of unreadable source sector $BAD is unchanged" \
        "$dev" $((ds + BAD - ss)) "$orig" $((ds + BAD - ss)) 1
    re="^kcopy: (warning: )?destination $n '$dev': ([0-9]+) of $count sectors written"
    written=$(sed -nE "s|$re.*|\\2|p" "$STDERR_FILE")
    [[ -n $written ]] || fail "stderr does not say how many sectors destination $n got ('destination $n '$dev': W of $count sectors written')"
    ((written == copied)) ||
        fail "kcopy says destination $n got $written sectors, but $copied sectors hold the source's data"
    ((copied < count)) || fail "destination $n got all $count sectors, though sector $BAD is unreadable"
}

reset_all() {
    restore_device "$d1" "$d1_orig"
    restore_device "$d2" "$d2_orig"
}

check "one destination: kcopy $src $d1:1000 exits exactly 64"
reset_all
expect_status 64 "$KCOPY" "$src" "$d1:1000"
expect_read_error_lines 2048 0 $((SECTORS - 1))
expect_partial_copy 1 "$d1" "$d1_orig" 1000 0 "$SECTORS"
expect_matches_model "destination 2 (not in this copy)" "$d2" "$d2_orig"

check "two destinations: kcopy $src $d1 $d2:2048 exits exactly 64 (no destination bit)"
reset_all
expect_status 64 "$KCOPY" "$src" "$d1" "$d2:2048"
expect_read_error_lines 2048 0 $((SECTORS - 1))
expect_partial_copy 1 "$d1" "$d1_orig" 0 0 "$SECTORS"
expect_partial_copy 2 "$d2" "$d2_orig" 2048 0 "$SECTORS"

check "a source range with small sub-jobs: kcopy --io-size 64K $src:20000:20000 $d1:7 $d2:60000 exits exactly 64"
reset_all
expect_status 64 "$KCOPY" --io-size 64K "$src:20000:20000" "$d1:7" "$d2:60000"
expect_read_error_lines 128 20000 39999
expect_partial_copy 1 "$d1" "$d1_orig" 7 20000 20000
expect_partial_copy 2 "$d2" "$d2_orig" 60000 20000 20000

check "a source range that avoids the bad sector copies cleanly: kcopy $src:0:30001 $d1 exits exactly 0"
reset_all
expect_status 0 "$KCOPY" "$src:0:$BAD" "$d1"
expected=$(pristine_copy "$d1_orig" "$SCRATCH/expected.img")
model_copy "$expected" "$src_orig" 0 0 "$BAD"
expect_matches_model "destination 1 (sectors 0-$((BAD - 1)))" "$d1" "$expected"

check "the source is unchanged"
cmp -s -- "$src_img" "$src_orig" || fail "the source image changed"

pass
