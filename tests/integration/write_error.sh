#!/usr/bin/env bash
# A destination that fails its writes (a loop device over a full tmpfs) sets
# exactly its own exit-status bit, is named on stderr with the error, and the
# other destinations still get a complete, byte-exact copy.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

src_img=$(make_image src.img 32M)
d1_img=$(make_image d1.img 32M)
d3_img=$(make_image d3.img 32M)
src_orig=$(pristine_copy "$src_img")
d1_orig=$(pristine_copy "$d1_img")
d3_orig=$(pristine_copy "$d3_img")
src=$(attach "$src_img")
d1=$(attach "$d1_img")
d3=$(attach "$d3_img")
# 64 MiB device whose writes fail once 8 MiB have been stored.
full=$(tmpfs_full_device 8M 64M)

# expect_write_error_line N: one stderr line names destination N, says
# "write error" and gives the errno text; no error line names another one.
expect_write_error_line() {
    local n=$1 i
    stderr_line_with "destination $n([^0-9]|$)" "write error" "No space left on device|Input/output error" ||
        fail "no stderr line names destination $n with 'write error' and ENOSPC/EIO text"
    for i in 1 2 3 4 5 6; do
        ((i == n)) && continue
        ! stderr_line_with "destination $i([^0-9]|$)" "[Ee]rror" ||
            fail "stderr reports an error on destination $i, which had none"
    done
}

reset_all() {
    restore_device "$d1" "$d1_orig"
    restore_device "$d3" "$d3_orig"
    empty_full_device "$full"
}

check "destination 2 of 3 full: kcopy $src $d1 $full $d3 exits exactly 2"
reset_all
expect_status 2 "$KCOPY" "$src" "$d1" "$full" "$d3"
check "stderr names destination 2 and the write error"
expect_write_error_line 2
check "destinations 1 and 3 are byte-exact copies of the source"
expect_matches_model "destination 1" "$d1" "$src_orig"
expect_matches_model "destination 3" "$d3" "$src_orig"
expect_matches_model "source unchanged" "$src" "$src_orig"

check "the only destination full: kcopy $src $full exits exactly 1"
reset_all
expect_status 1 "$KCOPY" "$src" "$full"
expect_write_error_line 1

check "destination 3 of 3 full, with a range: kcopy $src:0:40000 $d1:100 $d3 $full exits exactly 4"
reset_all
expect_status 4 "$KCOPY" "$src:0:40000" "$d1:100" "$d3" "$full"
expect_write_error_line 3
expected=$(pristine_copy "$d1_orig" "$SCRATCH/expected.img")
model_copy "$expected" "$src_orig" 0 100 40000
expect_matches_model "destination 1 (at 100)" "$d1" "$expected"
expected=$(pristine_copy "$d3_orig" "$SCRATCH/expected.img")
model_copy "$expected" "$src_orig" 0 0 40000
expect_matches_model "destination 3 (at 0)" "$d3" "$expected"

check "the full destination first, with a tiny pool: kcopy --pages 4 --io-size 4K $src $full $d1 exits exactly 1"
reset_all
expect_status 1 "$KCOPY" --pages 4 --io-size 4K "$src" "$full" "$d1"
expect_write_error_line 1
expect_matches_model "destination 2 after a failed destination 1" "$d1" "$src_orig"

check "buffered writes that fail in writeback or at the final flush: kcopy --buffered $src $d1 $full exits exactly 2"
reset_all
expect_status 2 "$KCOPY" --buffered "$src" "$d1" "$full"
stderr_line_with "destination 2([^0-9]|$)" "No space left on device|Input/output error" ||
    fail "no stderr line names destination 2 with ENOSPC/EIO text"
expect_matches_model "buffered: destination 1" "$d1" "$src_orig"

pass
