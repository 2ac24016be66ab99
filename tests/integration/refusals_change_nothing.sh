#!/usr/bin/env bash
# What kcopy refuses, it refuses before it changes anything, and it says why in
# one line that names the real cause (issue 7, rows 2, 6, 9, 10, 11, 12, 13):
#   row 2   a bare name typed in /dev creates no file there;
#   row 6   a file that cannot reach its size (file system limit, ulimit -f)
#           is refused before any destination grows; a file created by the
#           refused run is removed; a write past ulimit -f is a write error
#           (exit 1, "File too large"), not a death by SIGXFSZ;
#   row 9   paths in device-layer messages are escaped (newline, ESC);
#   row 10  a file on a read-only mount is said to be on a read-only file
#           system, without the block-device hint;
#   row 11  a missing path followed by three numbers is an error, not a new
#           file named "new.img:1";
#   row 12  an absurd pool (--pages 3000000 --io-size 4K) is refused at once,
#           without allocating gigabytes;
#   row 13  a 4Kn device whose size is not whole 4 KiB blocks: its partial
#           last block is not offered (refused up front, not an EIO later).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python

src_img=$(make_image src.img 4M) # 8192 sectors
src=$(attach "$src_img")

# refused_one_line ERE: the last run wrote exactly one "kcopy: " line matching ERE.
refused_one_line() {
    expect_one_error_line
    stderr_line_with "$1" || fail "the message does not match /$1/"
}

row2_bare_name_in_dev() {
    local name=kcopy-test-sdzz
    [[ ! -e /dev/$name ]] || skip "/dev/$name exists"
    check "row 2: cd /dev && kcopy SRC:0:8 $name: refused, no /dev/$name"
    local rc=0
    (expect_status 128 bash -c 'cd /dev && exec "$@"' _ "$KCOPY" "$src:0:8" "$name") || rc=$?
    if [[ -e /dev/$name ]]; then
        rm -f "/dev/$name"
        fail "kcopy created /dev/$name (removed)"
    fi
    ((rc == 0)) || exit "$rc"
    refused_one_line "destination 1 '$name': no such device"
}

row6_cannot_grow() {
    # ext4 with 4 KiB blocks: no file past 16 TiB - 4 KiB.
    local fs mnt
    fs=$(attach "$(make_image fs.img 64M)")
    mkfs.ext4 -q -F -b 4096 "$fs" || skip "mkfs.ext4 failed"
    mnt=$(mount_device "$fs")
    head -c 5000 /dev/urandom >"$mnt/small.img"
    cp "$mnt/small.img" "$SCRATCH/small.orig"
    check "row 6: kcopy SRC:0:8 small.img:10000 new.img big.img:16T: refused, small.img unchanged, new.img removed"
    expect_status 128 "$KCOPY" "$src:0:8" "$mnt/small.img:10000" "$mnt/new.img" "$mnt/big.img:16T"
    cmp -s "$mnt/small.img" "$SCRATCH/small.orig" || fail "small.img changed: now $(stat -c %s "$mnt/small.img") bytes"
    [[ ! -e $mnt/new.img && ! -e $mnt/big.img ]] || fail "a file of the refused run was left: $(ls "$mnt")"
    refused_one_line "destination 3 '.*big.img': cannot be grown to [0-9]+ bytes: larger than its file system allows"

    check "row 6: ulimit -f 100 and a new 1 MiB destination: refused, named, nothing created"
    expect_status 128 bash -c 'ulimit -f 100 && exec "$@"' _ "$KCOPY" "$src:0:2048" "$mnt/new.img"
    refused_one_line "cannot be grown to 1048576 bytes: .*file-size limit of 102400 bytes \(ulimit -f\)"
    [[ ! -e $mnt/new.img ]] || fail "new.img was left behind"

    check "row 6: ulimit -f 100 and an existing 4 MiB destination: a write error (exit 1, File too large), no SIGXFSZ"
    head -c 4M /dev/zero >"$mnt/big.img"
    expect_status 1 bash -c 'ulimit -f 100 && exec "$@"' _ "$KCOPY" "$src:0:2048" "$mnt/big.img:2048"
    stderr_line_with "^kcopy: destination 1 '.*big.img': write error at sectors 2048-.*: File too large" ||
        fail "no write error line naming 'File too large'"
}

row9_paths_escaped() {
    local nl=$SCRATCH/no$'\n'such esc=$SCRATCH/dir$'\e'[2J
    mkdir -- "$esc"
    check "row 9: a missing source with a newline in its path: one line, the newline shown as \\n"
    expect_status 128 "$KCOPY" "$nl" "$SCRATCH/out.img"
    refused_one_line "^kcopy: source '.*/no\\\\nsuch': No such file or directory$"
    check "row 9: a destination directory with ESC in its name: one line, ESC shown as \\x1b"
    expect_status 128 "$KCOPY" "$src" "$esc"
    refused_one_line "'.*/dir\\\\x1b\[2J': is a directory"
    ! grep -q $'\e' "$STDERR_FILE" || fail "stderr holds a raw ESC"
}

row10_read_only_mount() {
    local mnt
    mnt=$(mount_tmpfs 8M)
    head -c 1M /dev/zero >"$mnt/f.img"
    mount -o remount,ro "$mnt" || skip "cannot remount tmpfs read-only"
    check "row 10: a file on a read-only mount: 'read-only file system', no blockdev hint"
    expect_status 128 "$KCOPY" "$src:0:8" "$mnt/f.img"
    refused_one_line "'.*/f.img': is on a read-only file system"
    expect_stderr_lacks blockdev
    check "row 10: a new file there: the same"
    expect_status 128 "$KCOPY" "$src:0:8" "$mnt/new.img"
    refused_one_line "'.*/new.img': is on a read-only file system"
}

row11_third_number() {
    check "row 11: new.img:1:2:8 with nothing existing: refused, no file 'new.img:1'"
    expect_status 128 "$KCOPY" "$src:0:8" "$SCRATCH/new.img:1:2:8"
    refused_one_line "too many ':' fields"
    expect_no_stray_files "$SCRATCH/new.img"
    [[ ! -e $SCRATCH/new.img ]] || fail "new.img was created"
}

row12_absurd_pool() {
    check "row 12: --pages 3000000 --io-size 4K for a 4 KiB copy: refused at once, peak RSS under 64 MiB"
    local out
    out=$("$PYTHON" - "$KCOPY" --pages 3000000 --io-size 4K "$src:0:8" "$SCRATCH/out.img" 2>"$STDERR_FILE" <<'PY'
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:], timeout=60)
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
PY
    ) || fail "could not run kcopy"
    sed 's/^/    stderr: /' "$STDERR_FILE"
    read -r rc rss <<<"$out"
    ((rc == 128)) || fail "exit status $rc, want 128"
    ((rss < 64)) || fail "peak RSS $rss MiB"
    refused_one_line "sub-jobs in flight; at most [0-9]+ are allowed"
    [[ ! -e $SCRATCH/out.img ]] || fail "out.img was created"
}

row13_partial_last_block() {
    local img dev
    img=$(make_image odd.img $((1048576 + 1536)))
    dev=$(attach "$img" --sector-size 4096)
    (($(blockdev --getss "$dev") == 4096)) || skip "no 4Kn loop devices here"
    check "row 13: a 4Kn device of 1 MiB + 1536 bytes: a range over its partial last block is refused up front"
    expect_status 128 "$KCOPY" "$dev:2040:11" "$SCRATCH/out.img"
    refused_one_line "ends past the end of the device \(2048 sectors\)"
    check "row 13: the whole device by default: exactly its 1 MiB of whole blocks, exit 0"
    expect_status 0 "$KCOPY" "$dev" "$SCRATCH/out.img"
    (($(size_bytes "$SCRATCH/out.img") == 1048576)) || fail "out.img is $(size_bytes "$SCRATCH/out.img") bytes"
    expect_same_sectors "the copy" "$SCRATCH/out.img" 0 "$img" 0 2048
}

run_case "row 2: a bare name in /dev" row2_bare_name_in_dev
run_case "row 6: a file that cannot reach its size" row6_cannot_grow
run_case "row 9: paths escaped in device messages" row9_paths_escaped
run_case "row 10: a read-only mount" row10_read_only_mount
run_case "row 11: a third number" row11_third_number
run_case "row 12: an absurd pool" row12_absurd_pool
run_case "row 13: a 4Kn device with a partial last block" row13_partial_last_block

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
