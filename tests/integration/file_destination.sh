#!/usr/bin/env bash
# Regular files as destinations: a missing file is created and holds exactly the
# copied sectors at the right offset (zeroes before them); an existing larger
# file keeps every byte outside the range; a smaller one is grown.  A regular
# file works as a source too.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

src_img=$(make_image src.img 32M)
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")

new=$SCRATCH/new.img
check "loop source to a missing file at sector 4096: kcopy $src:2048:8192 new.img:4096 exits 0"
kcopy_ok "$src:2048:8192" "$new:4096"
[[ -f $new ]] || fail "$new was not created as a regular file"
check "the new file is exactly 4096+8192 sectors long"
size=$(size_bytes "$new")
((size == (4096 + 8192) * 512)) || fail "new file is $size bytes, want $(((4096 + 8192) * 512))"
check "the new file holds zeroes before sector 4096 and source sectors 2048..10239 from there"
expect_zero_sectors "new file before the range" "$new" 0 4096
expect_same_sectors "new file range" "$new" 4096 "$src_orig" 2048 8192

big=$(make_image big.img 32M)
big_orig=$(pristine_copy "$big")
check "loop source to an existing larger file: kcopy $src:2048:8192 big.img:4096 exits 0"
kcopy_ok "$src:2048:8192" "$big:4096"
check "the larger file keeps its size and every byte outside the range"
expected=$(pristine_copy "$big_orig" "$SCRATCH/expected.img")
model_copy "$expected" "$src_orig" 2048 4096 8192
expect_same_sectors "larger file: sector before the range" "$big" 4095 "$big_orig" 4095 1
expect_same_sectors "larger file: sector after the range" "$big" 12288 "$big_orig" 12288 1
expect_matches_model "larger file" "$big" "$expected"

small=$(make_image small.img 1M)
small_orig=$(pristine_copy "$small")
check "loop source to an existing smaller file: kcopy $src:2048:8192 small.img:4096 exits 0"
kcopy_ok "$src:2048:8192" "$small:4096"
check "the smaller file is grown to 12288 sectors: old bytes kept, zeroes up to the range, then the range"
size=$(size_bytes "$small")
((size == 12288 * 512)) || fail "grown file is $size bytes, want $((12288 * 512))"
expect_same_sectors "grown file: old contents" "$small" 0 "$small_orig" 0 2048
expect_zero_sectors "grown file: gap" "$small" 2048 2048
expect_same_sectors "grown file: range" "$small" 4096 "$src_orig" 2048 8192

whole=$SCRATCH/whole.img
check "whole loop device to a missing file: kcopy $src whole.img gives an identical file"
kcopy_ok "$src" "$whole"
expect_matches_model "whole device to file" "$whole" "$src_orig"

odd=$SCRATCH/odd.img
check "regular file source to a missing file at odd sectors: kcopy src.img.orig:7:13 odd.img:3 exits 0"
kcopy_ok "$src_orig:7:13" "$odd:3"
size=$(size_bytes "$odd")
((size == 16 * 512)) || fail "odd file is $size bytes, want $((16 * 512))"
expect_zero_sectors "odd file before the range" "$odd" 0 3
expect_same_sectors "odd file range" "$odd" 3 "$src_orig" 7 13

check "one loop source to a device and two files at once: exit 0, each holds the range"
dst_img=$(make_image dst.img 16M)
dst_orig=$(pristine_copy "$dst_img")
dst=$(attach "$dst_img")
f1=$SCRATCH/f1.img
cp -- "$big_orig" "$big"
kcopy_ok "$src:100:5000" "$dst:1" "$f1" "$big:30000"
expected=$(pristine_copy "$dst_orig" "$SCRATCH/expected.img")
model_copy "$expected" "$src_orig" 100 1 5000
expect_matches_model "mixed: device" "$dst" "$expected"
((($(size_bytes "$f1")) == 5000 * 512)) || fail "mixed: f1.img is $(size_bytes "$f1") bytes, want $((5000 * 512))"
expect_same_sectors "mixed: new file" "$f1" 0 "$src_orig" 100 5000
expected=$(pristine_copy "$big_orig" "$SCRATCH/expected.img")
model_copy "$expected" "$src_orig" 100 30000 5000
expect_matches_model "mixed: existing file" "$big" "$expected"

pass
