#!/usr/bin/env bash
# Where O_DIRECT is refused (a file on ramfs; tmpfs too before Linux 6.6), kcopy
# falls back to buffered I/O
# with exactly one notice line naming the file, and still copies byte-exact;
# -q silences the notice; --buffered asks for buffered I/O and prints nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

src_img=$(make_image src.img 16M)
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
# A ramfs mount, undone by lib.sh's cleanup.
mnt=$(mktemp -d "$SCRATCH/ramfs.XXXXXX")
mount -t ramfs kcopy-test "$mnt" || skip "cannot mount ramfs"
_push_cleanup umount "$mnt"

check "loop device to a new file on ramfs: exit 0, one notice naming the file"
kcopy_ok "$src:100:4000" "$mnt/copy.img:8"
expect_one_error_line
expect_stderr_has "destination 1 '$mnt/copy.img'" "O_DIRECT is not supported" "buffered"
expect_zero_sectors "ramfs file before the range" "$mnt/copy.img" 0 8
expect_same_sectors "ramfs file range" "$mnt/copy.img" 8 "$src_orig" 100 4000

check "a file on ramfs as the source: the same notice, the copy exact"
cp -- "$src_orig" "$mnt/src.img"
dst_img=$(make_image dst.img 16M)
dst_orig=$(pristine_copy "$dst_img")
dst=$(attach "$dst_img")
kcopy_ok "$mnt/src.img:0:2048" "$dst:2048"
expect_one_error_line
expect_stderr_has "source '$mnt/src.img'" "O_DIRECT is not supported"
expected=$(pristine_copy "$dst_orig" "$SCRATCH/expected.img")
model_copy "$expected" "$src_orig" 0 2048 2048
expect_matches_model "destination" "$dst" "$expected"

check "-q: no notice, the copy exact"
rm -f -- "$mnt/copy.img"
kcopy_ok -q "$src:100:4000" "$mnt/copy.img:8"
[[ ! -s $STDERR_FILE ]] || fail "stderr is not empty with -q"
expect_same_sectors "ramfs file range (-q)" "$mnt/copy.img" 8 "$src_orig" 100 4000

check "--buffered between loop devices: no notice, the copy exact"
restore_device "$dst" "$dst_orig"
kcopy_ok --buffered "$src:300:5000" "$dst:7"
[[ ! -s $STDERR_FILE ]] || fail "stderr is not empty with --buffered"
expected=$(pristine_copy "$dst_orig" "$SCRATCH/expected.img")
model_copy "$expected" "$src_orig" 300 7 5000
expect_matches_model "destination (--buffered)" "$dst" "$expected"

pass
