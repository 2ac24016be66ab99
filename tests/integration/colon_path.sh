#!/usr/bin/env bash
# Paths with ':' in them (every /dev/disk/by-path name) work as source and as
# destination, bare and followed by :SECTOR[:COUNT] fields.
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

# Two by-path style names: one whose last part is not a number, and one that
# ends in numeric-looking ":0:0:0:0" (a SCSI address).
ata=$SCRATCH/pci-0000:00:1f.2-ata-1
scsi=$SCRATCH/pci-0000:00:10.0-scsi-0:0:0:0
ln -s "$dst" "$ata"
ln -s "$src" "$scsi"
ln -s "$src" "$SCRATCH/pci-0000:00:1f.2-ata-2"
ata_src=$SCRATCH/pci-0000:00:1f.2-ata-2

# case SRC_ARG DST_ARG SRC_SECTOR DST_SECTOR COUNT: kcopy SRC_ARG DST_ARG exits
# 0 and the destination device is its original with COUNT sectors of the
# source from SRC_SECTOR at DST_SECTOR.
case_ok() {
    local sarg=$1 darg=$2 ss=$3 ds=$4 count=$5 expected
    restore_device "$dst" "$dst_orig"
    expected=$(pristine_copy "$dst_orig" "$SCRATCH/expected.img")
    model_copy "$expected" "$src_orig" "$ss" "$ds" "$count"
    check "kcopy $sarg $darg copies $count sectors from source sector $ss to destination sector $ds"
    kcopy_ok "$sarg" "$darg"
    expect_same_sectors "$sarg -> $darg: copied range" "$dst" "$ds" "$src_orig" "$ss" "$count"
    expect_matches_model "$sarg -> $darg: whole destination" "$dst" "$expected"
}

case_ok "$src:2048:4096" "$ata" 2048 0 4096
case_ok "$src:2048:4096" "$ata:8192" 2048 8192 4096
case_ok "$src:2048:4096" "$ata:20000:4096" 2048 20000 4096
case_ok "$ata_src" "$dst" 0 0 32768
case_ok "$ata_src:100" "$dst" 100 0 $((32768 - 100))
case_ok "$ata_src:100:200" "$dst:300" 100 300 200
case_ok "$ata_src:100:200" "$ata:300:200" 100 300 200
case_ok "$scsi" "$ata" 0 0 32768
case_ok "$scsi:100:200" "$ata:300" 100 300 200
case_ok "$scsi:0x10:16" "$dst:0x20:16" 16 32 16

check "a name with ':' that does not exist is refused with 128 and one error line"
expect_status 128 "$KCOPY" "$SCRATCH/pci-0000:00:1f.2-ata-9:0:8" "$dst"
expect_one_error_line
expect_matches_model "missing colon path: destination unchanged" "$dst" "$SCRATCH/expected.img"

pass
