#!/usr/bin/env bash
# --verify reads every destination back and compares it with what was read from
# the source (issue 9). A destination that loses writes (a FUSE file whose
# writes in sectors 5000-5099 succeed but store nothing, under a loop device) as
# destination 2 of 2: exit 2, the lost sectors named exactly as verify errors,
# destination 1 exact and clean. Without --verify the same copy exits 0 (the
# loss is silent: that is what --verify is for). A clean copy verifies clean.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_faulty_disk

src_img=$(make_image src.img 8M) # 16384 sectors
src=$(attach "$src_img")
d1=$(attach "$(make_image d1.img 8M)")
lossy_img=$(make_image lossy.img 8M)
lossy_orig=$(pristine_copy "$lossy_img")
lossy=$(faulty_device "$lossy_img" --lose-writes 5000:100)

check "without --verify the lost writes go unnoticed: exit 0"
kcopy_ok "$src" "$d1" "$lossy"
restore_backing "$lossy_img" "$lossy_orig" "$lossy"

check "--verify: exit 2, destination 2's verify errors are exactly sectors 5000-5099"
expect_status 2 "$KCOPY" --verify "$src" "$d1" "$lossy"
grep -E "verify error" "$STDERR_FILE" >"$SCRATCH/got.txt" || true
printf "kcopy: destination 2 '%s': verify error at sectors 5000-5099 (100 sectors): read back different data\n" \
    "$lossy" >"$SCRATCH/want.txt"
diff -u --label expected --label stderr "$SCRATCH/want.txt" "$SCRATCH/got.txt" >&2 ||
    fail "the verify errors reported are not exactly sectors 5000-5099 of destination 2"
expect_same_sectors "destination 1" "$d1" 0 "$src_img" 0 16384
expect_same_sectors "destination 2 before the lost range" "$lossy" 0 "$src_img" 0 5000
expect_same_sectors "destination 2 after the lost range" "$lossy" 5100 "$src_img" 5100 11284

check "--verify --buffered: the read-back comes from the device, not the page cache: the same report"
restore_backing "$lossy_img" "$lossy_orig" "$lossy"
expect_status 2 "$KCOPY" --verify --buffered "$src" "$d1" "$lossy"
grep -E "verify error" "$STDERR_FILE" >"$SCRATCH/got.txt" || true
diff -u --label expected --label stderr "$SCRATCH/want.txt" "$SCRATCH/got.txt" >&2 ||
    fail "with --buffered the verify errors are not exactly sectors 5000-5099 of destination 2"

check "--verify of a clean copy to a file and a loop device: exit 0"
kcopy_ok --verify "$src:100:8000" "$d1:7" "$SCRATCH/copy.img"
expect_same_sectors "file copy" "$SCRATCH/copy.img" 0 "$src_img" 100 8000
pass
