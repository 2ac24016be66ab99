#!/usr/bin/env bash
# The same region written in sectors, hex, explicit sectors ('s') and byte
# sizes with K/KiB/M/MiB suffixes copies exactly the same sectors; a byte size
# that is not a whole number of sectors (or not a whole number) is refused.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

src_img=$(make_image src.img 16M)
dst_img=$(make_image dst.img 16M)
src_orig=$(pristine_copy "$src_img")
dst_orig=$(pristine_copy "$dst_img")
src=$(attach "$src_img")
dst=$(attach "$dst_img")

# Expected for every spelling: source sectors 2048..10239 at destination 4096.
expected=$(pristine_copy "$dst_orig" "$SCRATCH/expected.img")
model_copy "$expected" "$src_orig" 2048 4096 8192

# Each row: source fields, destination fields.  All mean SRC:2048:8192 DST:4096.
rows=(
    "2048:8192 4096"
    "1M:4M 2M"
    "0x800:0x2000 0x1000"
    "2048s:8192s 4096s"
    "1MiB:4MiB 2MiB"
    "1024K:4096KiB 2048K"
    "0x400K:8192 0x2M"
    "2048:4M 0x1000s"
)
for row in "${rows[@]}"; do
    read -r sf df <<<"$row"
    restore_device "$dst" "$dst_orig"
    check "SRC:$sf DST:$df copies source sectors 2048..10239 to destination sector 4096, nothing else"
    kcopy_ok "$src:$sf" "$dst:$df"
    expect_matches_model "SRC:$sf DST:$df" "$dst" "$expected"
done

check "a COUNT given on the destination in another unit but equal in sectors is accepted"
restore_device "$dst" "$dst_orig"
kcopy_ok "$src:2048:8192" "$dst:2M:4M"
expect_matches_model "SRC:2048:8192 DST:2M:4M" "$dst" "$expected"

# Refused spellings: fractional numbers (whether or not the byte count would be
# whole sectors) and byte sizes that are not whole sectors.
restore_device "$dst" "$dst_orig"
bad=(
    "$src:1.5K:8 $dst"
    "$src:0:0.25K $dst"
    "$src:0:1.5 $dst"
    "$src:0:8 $dst:0.5M"
)
for row in "${bad[@]}"; do
    read -ra args <<<"$row"
    check "kcopy $row is refused with 128, one error line, destination unchanged"
    expect_status 128 "$KCOPY" "${args[@]}"
    expect_one_error_line
    expect_matches_model "refused kcopy $row: destination" "$dst" "$dst_orig"
    expect_no_stray_files "$src" "$dst"
done

pass
