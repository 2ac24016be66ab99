#!/usr/bin/env bash
# A destination whose writes fail at chosen sectors (a loop device over a FUSE
# faulty disk), as destination 2 of 3.
# - Without --ignore-errors: exit status exactly 2; destinations 1 and 3 are
#   byte-exact; destination 2 is dropped at its first failed write: stderr
#   names it and a failed range holding a bad sector ("...; nothing more was
#   written to it"), each of its sectors is the source's or its old one, its
#   bad sectors are the old ones, nothing outside the range changed.
# - With --ignore-errors: exit status exactly 2; destinations 1 and 3 byte-exact;
#   destination 2 exact everywhere except exactly its bad sectors, which keep
#   their old bytes (checked in the backing image too), and stderr lists exactly
#   its bad ranges inside the destination range, merged, in ascending order:
#     kcopy: destination 2 'DEV': write error at sectors A-B (N sectors): Input/output error
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_faulty_disk

SECTORS=65536 # 32 MiB source
# Bad sectors of destination 2 (its own sector numbers), START:COUNT.  With
# destination 2 at sector 500: one just before the range, the first sector,
# a single one, three adjacent, 100 across the sub-job boundary at 41460
# (500 + 20 x 2048 = 500 + 320 x 128), the last sector, one just after.
BAD_RANGES=(499:1 500:1 20000:1 30000:3 41400:100 66035:1 66036:1)

src_img=$(make_image src.img 32M)
d1_img=$(make_image d1.img 40M)
d2_img=$(make_image d2.img 40M)
d3_img=$(make_image d3.img 40M)
src_orig=$(pristine_copy "$src_img")
d1_orig=$(pristine_copy "$d1_img")
d2_orig=$(pristine_copy "$d2_img")
d3_orig=$(pristine_copy "$d3_img")
src=$(attach "$src_img")
d1=$(attach "$d1_img")
args=()
for r in "${BAD_RANGES[@]}"; do args+=(--write-error "$r"); done
d2=$(faulty_device "$d2_img" "${args[@]}")
d3=$(attach "$d3_img")

check "the fixture: exactly the bad sectors of $d2 refuse writes (EIO) and keep their bytes"
zero=$SCRATCH/zero.512
head -c 512 /dev/zero >"$zero"
for s in 498 499 500 501 29999 30000 30002 30003 41399 41400 41499 41500 66034 66035 66036 66037; do
    want=ok
    for r in "${BAD_RANGES[@]}"; do
        ((s >= ${r%:*} && s < ${r%:*} + ${r#*:})) && want=EIO
    done
    got=ok
    dd if="$zero" of="$d2" oflag=direct bs=512 seek="$s" count=1 conv=notrunc status=none 2>/dev/null || got=EIO
    [[ $got == "$want" ]] || fail "fixture: writing sector $s of $d2: $got, want $want"
    if [[ $want == EIO ]]; then
        expect_same_sectors "fixture: refused sector $s" "$d2_img" "$s" "$d2_orig" "$s" 1
    else
        expect_zero_sectors "fixture: written sector $s" "$d2_img" "$s" 1
    fi
done

# in_bad SECTOR: true if destination 2's SECTOR is bad.
in_bad() {
    local r
    for r in "${BAD_RANGES[@]}"; do
        (($1 >= ${r%:*} && $1 < ${r%:*} + ${r#*:})) && return 0
    done
    return 1
}

# expect_write_error_report FIRST LAST: the write errors reported are exactly
# destination 2's bad ranges clipped to its sectors FIRST-LAST; no other
# endpoint is said to have failed.
expect_write_error_report() {
    expect_error_report "destination 2" "$d2" "$1" "$2"
    expect_no_error_but_destination_2
}

expect_no_error_but_destination_2() {
    local i
    for i in 1 3 4 5 6; do
        ! stderr_line_with "destination $i([^0-9]|$)" "[Ee]rror" ||
            fail "stderr reports an error on destination $i, which had none"
    done
    ! stderr_line_with "^kcopy: source " "[Ee]rror" || fail "stderr reports a source error"
}

# model_d2 EXPECTED DST_SECTOR FIRST COUNT: destination 2 after an
# --ignore-errors copy of COUNT source sectors from FIRST to DST_SECTOR: the
# source's sectors, except the bad ones, which keep their old bytes.
model_d2() {
    local expected=$1 ds=$2 first=$3 count=$4 a b
    model_copy "$expected" "$src_orig" "$first" "$ds" "$count"
    while read -r a b; do
        dd if="$d2_orig" of="$expected" bs=512 skip="$a" seek="$a" count=$((b - a)) conv=notrunc status=none
    done < <(clipped_bad_ranges "$ds" $((ds + count)))
}

# expect_d1_d3_whole_copy: after "kcopy SRC D1:1000 D2:... D3", destinations 1
# and 3 hold the whole source at their sectors, and nothing else changed.
expect_d1_d3_whole_copy() {
    expected=$(pristine_copy "$d1_orig" "$SCRATCH/expected1.img")
    model_copy "$expected" "$src_orig" 0 1000 "$SECTORS"
    expect_matches_model "destination 1" "$d1" "$expected"
    expected=$(pristine_copy "$d3_orig" "$SCRATCH/expected3.img")
    model_copy "$expected" "$src_orig" 0 0 "$SECTORS"
    expect_matches_model "destination 3" "$d3" "$expected"
}

reset_all() {
    restore_device "$d1" "$d1_orig"
    restore_backing "$d2_img" "$d2_orig" "$d2"
    restore_device "$d3" "$d3_orig"
}

check "without --ignore-errors: kcopy $src $d1:1000 $d2:501 $d3 exits exactly 2"
reset_all
expect_status 2 "$KCOPY" "$src" "$d1:1000" "$d2:501" "$d3"
n=0
while read -r a b c; do
    n=$((n + 1))
    ((c == b - a + 1)) || fail "write error line $a-$b says $c sectors"
    ((501 <= a && b <= 501 + SECTORS - 1)) || fail "reported write error $a-$b lies outside destination 2's range"
    hit=0
    for ((s = a; s <= b; s++)); do in_bad "$s" && { hit=1; break; }; done
    ((hit)) || fail "reported write error $a-$b holds none of destination 2's bad sectors"
    grep -qxF -- "$(bad_range_line "destination 2" "$d2" "$a" "$b"); nothing more was written to it" "$STDERR_FILE" ||
        fail "write error line for $a-$b is not exactly: $(bad_range_line "destination 2" "$d2" "$a" "$b"); nothing more was written to it"
done < <(reported_ranges write "destination 2" "$d2")
((n >= 1)) || fail "no stderr line 'kcopy: destination 2 '$d2': write error at sectors A-B (N sectors): Input/output error; nothing more was written to it'"
expect_no_error_but_destination_2
expect_d1_d3_whole_copy
expect_same_sectors "destination 2: sectors before the range" "$d2_img" 0 "$d2_orig" 0 501
expect_same_sectors "destination 2: sectors after the range" "$d2_img" $((501 + SECTORS)) "$d2_orig" \
    $((501 + SECTORS)) $((81920 - 501 - SECTORS))
copied=$(count_copied_sectors "destination 2" "$d2" 501 "$src_orig" 0 "$d2_orig" "$SECTORS")
((copied < SECTORS)) || fail "destination 2 got all $SECTORS sectors, though its bad sectors refuse writes"
for r in "${BAD_RANGES[@]}"; do
    expect_same_sectors "destination 2: bad sectors $r keep their old bytes" "$d2_img" "${r%:*}" "$d2_orig" "${r%:*}" "${r#*:}"
done
expect_matches_model "source unchanged" "$src" "$src_orig"

check "--ignore-errors: kcopy --ignore-errors $src $d1:1000 $d2:500 $d3 exits exactly 2"
"$KCOPY" --help 2>&1 | grep -q -- --ignore-errors || fail "$KCOPY has no --ignore-errors option"
reset_all
expect_status 2 "$KCOPY" --ignore-errors "$src" "$d1:1000" "$d2:500" "$d3"
expect_write_error_report 500 $((500 + SECTORS - 1))
expect_d1_d3_whole_copy
expected=$(pristine_copy "$d2_orig" "$SCRATCH/expected2.img")
model_d2 "$expected" 500 0 "$SECTORS"
expect_matches_model "destination 2 (its backing image): the source, old bytes at the bad sectors" "$d2_img" "$expected"
expect_matches_model "destination 2 (read through the device)" "$d2" "$expected"

check "--ignore-errors, 64 KiB sub-jobs, a source range: kcopy --ignore-errors --io-size 64K $src:100:30000 $d1 $d2:19990 $d3:5 exits exactly 2"
reset_all
expect_status 2 "$KCOPY" --ignore-errors --io-size 64K "$src:100:30000" "$d1" "$d2:19990" "$d3:5"
expect_write_error_report 19990 $((19990 + 30000 - 1))
expected=$(pristine_copy "$d1_orig" "$SCRATCH/expected1.img")
model_copy "$expected" "$src_orig" 100 0 30000
expect_matches_model "destination 1" "$d1" "$expected"
expected=$(pristine_copy "$d3_orig" "$SCRATCH/expected3.img")
model_copy "$expected" "$src_orig" 100 5 30000
expect_matches_model "destination 3" "$d3" "$expected"
expected=$(pristine_copy "$d2_orig" "$SCRATCH/expected2.img")
model_d2 "$expected" 19990 100 30000
expect_matches_model "destination 2 (its backing image)" "$d2_img" "$expected"

check "--ignore-errors, destination 2 clear of its bad sectors: kcopy --ignore-errors $src:0:19000 $d1 $d2:501 $d3 exits exactly 0"
reset_all
expect_status 0 "$KCOPY" --ignore-errors "$src:0:19000" "$d1" "$d2:501" "$d3"
expected=$(pristine_copy "$d2_orig" "$SCRATCH/expected2.img")
model_copy "$expected" "$src_orig" 0 501 19000
expect_matches_model "destination 2 (its backing image)" "$d2_img" "$expected"

pass
