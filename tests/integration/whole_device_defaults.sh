#!/usr/bin/env bash
# "kcopy SRC DST" with no fields copies the whole source to the start of the
# destination: equal sizes give an identical device, a smaller source leaves the
# rest of the destination untouched, a larger source is refused (exit 128) and
# nothing is written.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

big1_img=$(make_image big1.img 32M)
big2_img=$(make_image big2.img 32M)
small_img=$(make_image small.img 16M)
big1_orig=$(pristine_copy "$big1_img")
big2_orig=$(pristine_copy "$big2_img")
small_orig=$(pristine_copy "$small_img")
big1=$(attach "$big1_img")
big2=$(attach "$big2_img")
small=$(attach "$small_img")

check "equal sizes: kcopy $big1 $big2 exits 0 and makes $big2 identical to $big1"
kcopy_ok "$big1" "$big2"
expect_matches_model "equal sizes: destination" "$big2" "$big1_orig"
expect_matches_model "equal sizes: source unchanged" "$big1" "$big1_orig"

check "smaller source: kcopy $small $big1 exits 0"
kcopy_ok "$small" "$big1"
check "smaller source: the first 16 MiB of $big1 equal $small, the last 16 MiB are unchanged"
expect_same_sectors "smaller source: copied part" "$big1" 0 "$small_orig" 0 32768
expect_same_sectors "smaller source: sector just after" "$big1" 32768 "$big1_orig" 32768 1
expect_same_sectors "smaller source: rest of destination" "$big1" 32768 "$big1_orig" 32768 32768

check "larger source: kcopy $big2 $small is refused with 128, one error line, $small unchanged"
expect_status 128 "$KCOPY" "$big2" "$small"
expect_one_error_line
expect_matches_model "larger source: destination" "$small" "$small_orig"

check "a smaller source ending exactly at the end of the destination: kcopy $small $big2:32768 exits 0"
restore_device "$big2" "$big2_orig"
kcopy_ok "$small" "$big2:32768"
expected=$(pristine_copy "$big2_orig" "$SCRATCH/expected.img")
model_copy "$expected" "$small_orig" 0 32768 32768
expect_matches_model "source at an offset: destination" "$big2" "$expected"

check "one sector further it does not fit: kcopy $small $big2:32769 is refused with 128, $big2 unchanged"
expect_status 128 "$KCOPY" "$small" "$big2:32769"
expect_one_error_line
expect_matches_model "one sector too far: destination" "$big2" "$expected"

check "a source starting at SECTOR defaults COUNT to the rest: kcopy $big1:40000 $small exits 0"
restore_device "$small" "$small_orig"
kcopy_ok "$big1:40000" "$small"
expected=$(pristine_copy "$small_orig" "$SCRATCH/expected.img")
# Sectors 40000.. of big1 lie past the 16 MiB the small copy overwrote.
model_copy "$expected" "$big1_orig" 40000 0 $((65536 - 40000))
expect_matches_model "source from sector 40000: destination" "$small" "$expected"

pass
