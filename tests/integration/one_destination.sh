#!/usr/bin/env bash
# A range of a block device copied to one destination device lands byte-exact
# at the destination offset, and nothing else on the destination changes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

src_img=$(make_image src.img 64M)
dst_img=$(make_image dst.img 64M) # different random data: a no-op copy cannot pass
src_orig=$(pristine_copy "$src_img")
dst_orig=$(pristine_copy "$dst_img")
src=$(attach "$src_img")
dst=$(attach "$dst_img")

# copy_and_check LABEL [OPTIONS...]: SRC:2048:8192 -> DST:4096 on a fresh
# destination, then check the range, its neighbours and the whole device.
copy_and_check() {
    local label=$1
    shift
    check "$label: $src:2048:8192 -> $dst:4096 exits 0"
    restore_device "$dst" "$dst_orig"
    local expected
    expected=$(pristine_copy "$dst_orig" "$SCRATCH/expected.img")
    model_copy "$expected" "$src_orig" 2048 4096 8192

    kcopy_ok "$@" "$src:2048:8192" "$dst:4096"

    check "$label: destination sectors 4096..12287 equal source sectors 2048..10239"
    expect_same_sectors "$label: copied range" "$dst" 4096 "$src_orig" 2048 8192
    check "$label: sector 4095 (just before) and 12288 (just after) are unchanged"
    expect_same_sectors "$label: sector before the range" "$dst" 4095 "$dst_orig" 4095 1
    expect_same_sectors "$label: sector after the range" "$dst" 12288 "$dst_orig" 12288 1
    check "$label: the whole destination is the original with only that range replaced"
    expect_matches_model "$label: whole destination" "$dst" "$expected"
    check "$label: the source is unchanged"
    expect_matches_model "$label: source" "$src" "$src_orig"
    rm -f -- "$expected"
}

copy_and_check "defaults"
# A tiny pool and small sub-jobs: many sub-jobs, the pool is reused many times.
copy_and_check "tiny pool" --pages 4 --io-size 4K
copy_and_check "buffered" --buffered

pass
