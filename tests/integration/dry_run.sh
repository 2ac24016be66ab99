#!/usr/bin/env bash
# -n, --dry-run opens and checks everything as the real run does, and writes
# and creates nothing:
#   - what the real run refuses, the dry run refuses too, with the same one
#     line and exit 128: a mounted destination, a read-only device, a device too
#     small, overlap from opposite sides, the source range itself, a new file on
#     a read-only file system or past ulimit -f, a bad option (also with --json:
#     the same error in the report);
#   - a run the real one would start: exit 0 and the plan on stdout (each
#     region's path, sectors and bytes, logical block sizes, the I/O engine,
#     sub-jobs and pool, the memmove order), or with --json the plan as a report;
#   - every device holds the same bytes before and after (checksums), a new
#     file is not created, a short file is not grown, a mounted file system
#     stays mounted, and a real run right after works.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 not installed"

src_img=$(make_image src.img 16M) # 32768 sectors
src=$(attach "$src_img")
dst_img=$(make_image dst.img 16M)
dst=$(attach "$dst_img")
small=$(attach "$(make_image small.img 8M)")
ro=$(attach "$(make_image ro.img 16M)" --read-only)
fs=$(attach "$(make_image fs.img 32M)")
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$fs" || fail "mkfs.ext4 $fs failed"
mnt=$(mount_device "$fs")
DEVICES=("$src" "$dst" "$small" "$ro")

# snapshot: one line per device (its sha256, read with O_DIRECT: what the device
# holds, not the page cache), the mounted device's first two sectors (below
# ext4's superblock: the file system never writes them), and the files in
# $SCRATCH/files with their sizes.
mkdir -p "$SCRATCH/files"
snapshot() {
    "$PYTHON" - "${DEVICES[@]}" "$fs" <<'PY' || fail "cannot read the devices"
import hashlib, mmap, os, sys
buf = mmap.mmap(-1, 1 << 20)  # page-aligned, for O_DIRECT
*devices, fs = sys.argv[1:]
for dev in devices + [fs]:
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    h = hashlib.sha256()
    while (n := os.readv(fd, [buf])) > 0:
        h.update(buf[:n])
        if dev == fs:  # its first two sectors only: ext4 never writes below its superblock
            h = hashlib.sha256(buf[:1024])
            break
    os.close(fd)
    print(dev, h.hexdigest())
PY
    (cd "$SCRATCH/files" && find . -printf '%p %s\n' | sort)
}

# expect_unchanged BEFORE: nothing in the snapshot changed, the file system is still mounted.
expect_unchanged() {
    local now
    now=$(snapshot)
    [[ $now == "$1" ]] || fail "the dry run changed something:$(diff <(echo "$1") <(echo "$now") | sed 's/^/\n    /')"
    mountpoint -q "$mnt" || fail "$mnt is no longer mounted"
}

# same_refusal [RUNNER...] -- KCOPY ARGS...: kcopy --dry-run ARGS exits 128 with
# one line and changes nothing; kcopy ARGS exits 128 with the same line; and
# kcopy --dry-run --json ARGS reports that line as its error. RUNNER (e.g.
# bash -c 'ulimit -f 100 && exec "$@"' _) runs the command.
same_refusal() {
    local runner=()
    while [[ $1 != -- ]]; do runner+=("$1"); shift; done
    shift
    local before
    before=$(snapshot)
    expect_status 128 "${runner[@]}" "$KCOPY" --dry-run "$@"
    expect_one_error_line
    cp "$STDERR_FILE" "$SCRATCH/dry.err"
    [[ ! -s $STDOUT_FILE ]] || fail "a refused dry run printed a plan: $(cat "$STDOUT_FILE")"
    expect_unchanged "$before"
    expect_status 128 "${runner[@]}" "$KCOPY" "$@"
    diff -u --label "dry run" --label "real run" "$SCRATCH/dry.err" "$STDERR_FILE" >&2 ||
        fail "the dry run's message differs from the real run's"
    expect_status 128 "${runner[@]}" "$KCOPY" --dry-run --json "$@"
    "$PYTHON" "$TESTS_DIR/check_report.py" "$STDOUT_FILE" 128 dry_run=true \
        error="$(sed 's/^kcopy: //' "$SCRATCH/dry.err")" >/dev/null || fail "--dry-run --json: wrong report"
}

refusals() {
    check "a mounted destination"
    same_refusal -- "$src:0:2" "$fs"
    expect_stderr_has "is in use"
    check "a read-only device"
    same_refusal -- "$src" "$ro"
    expect_stderr_has "is read-only"
    check "a destination too small"
    same_refusal -- "$src" "$dst" "$small"
    expect_stderr_has "ends past the end of the device"
    check "two destinations overlapping the source from opposite sides"
    same_refusal -- "$src:4096:4096" "$src:2048" "$src:6144"
    expect_stderr_has "overlap the source from opposite sides"
    check "the source range itself"
    same_refusal -- "$src:0:100" "$src:0"
    expect_stderr_has "is the source range itself"
    check "a new file past ulimit -f"
    same_refusal bash -c 'ulimit -f 100 && exec "$@"' _ -- "$src:0:2048" "$SCRATCH/files/new.img"
    expect_stderr_has "ulimit -f"
    check "a new file on a read-only file system"
    local ro_mnt
    ro_mnt=$(mount_tmpfs 8M)
    mount -o remount,ro "$ro_mnt" || fail "cannot remount $ro_mnt read-only"
    same_refusal -- "$src:0:8" "$ro_mnt/new.img"
    expect_stderr_has "read-only file system"
    check "a bad option"
    same_refusal -- --io-engine bogus "$src" "$dst"
}

plan_text() {
    head -c 1M /dev/urandom >"$SCRATCH/files/short.img"
    local before
    before=$(snapshot)
    check "a copy that would start: exit 0, the plan on stdout, nothing written, created or grown"
    kcopy_ok --dry-run "$src" "$dst" "$SCRATCH/files/new.img" "$SCRATCH/files/short.img"
    sed 's/^/    stdout: /' "$STDOUT_FILE"
    expect_unchanged "$before"
    [[ ! -e $SCRATCH/files/new.img ]] || fail "the dry run created new.img"
    local want
    for want in \
        "^kcopy dry run: every check passed; nothing was written or created$" \
        "^source +'$src': sectors 0-32767 \(32768 sectors, 16777216 bytes = 16.0 MiB\)$" \
        "^ +block device of 32768 sectors, logical block 512 bytes, O_DIRECT, read-only$" \
        "^destination 1 +'$dst': sectors 0-32767 " \
        "^ +block device of 32768 sectors, logical block 512 bytes, O_DIRECT, O_EXCL: not in use$" \
        "^destination 2 +'.*/new.img': sectors 0-32767 " \
        "^ +regular file, would be created with 16777216 bytes, " \
        "^ +regular file of 1048576 bytes, would grow to 16777216 bytes, " \
        "^I/O engine +(io_uring|libaio) \(" \
        "^sub-jobs +32 of 512.0 KiB, at most 4 in flight \(page pool: 512 pages = 2.0 MiB\)$" \
        "^order +ascending$"; do
        grep -qE -- "$want" "$STDOUT_FILE" || fail "the plan has no line matching /$want/"
    done
    [[ ! -s $STDERR_FILE ]] || fail "a dry run that passed wrote to stderr"

    check "a destination above the source on the same device: the memmove order"
    kcopy_ok -n "$src:0:8192" "$src:4096"
    grep -qE "^order +descending, as memmove: destination 1 overlaps the source from above" "$STDOUT_FILE" ||
        fail "the plan does not give the descending memmove order"
    expect_unchanged "$before"

    check "a 4Kn destination: its logical block size"
    local dev4k
    dev4k=$(attach "$(make_image d4k.img 16M)" --sector-size 4096)
    (($(blockdev --getss "$dev4k") == 4096)) || skip "no 4Kn loop devices here"
    kcopy_ok -n --io-size 1M "$src" "$dev4k"
    grep -qE "^ +block device of 32768 sectors, logical block 4096 bytes" "$STDOUT_FILE" ||
        fail "the plan does not give the 4096-byte logical block"
    grep -qE "^sub-jobs +16 of 1.0 MiB" "$STDOUT_FILE" || fail "the plan does not give 16 sub-jobs of 1 MiB"

    check "the mounted device with --force: the plan says its use was not checked; still mounted, unchanged"
    kcopy_ok -n --force "$src:0:2" "$fs"
    grep -qE "not checked for use \(--force\)" "$STDOUT_FILE" || fail "the plan does not say --force skips the check"
    expect_unchanged "$before"

    check "a real run right after a dry run: nothing was left held"
    kcopy_ok "$src" "$dst"
    expect_same_sectors "the copy" "$dst" 0 "$src" 0 32768
}

plan_json() {
    local before
    before=$(snapshot)
    check "--dry-run --json: the plan as a report (exit 0, dry_run, not_written, would_create)"
    kcopy_ok --dry-run --json "$src:0:8192" "$src:4096" "$SCRATCH/files/new2.img"
    "$PYTHON" "$TESTS_DIR/check_report.py" "$STDOUT_FILE" 0 dry_run=true bytes=0 \
        destinations.0.status=not_written destinations.0.sectors_written=0 destinations.1.would_create=true \
        destinations.1.grows_to=4194304 destinations.1.device_bytes=0 source.count=8192 source.exclusive=true \
        plan.order=descending plan.overlapping_destinations=[1] plan.sub_jobs=8 plan.pool_pages=512 \
        plan.io_size=524288 || fail "wrong --dry-run --json report"
    [[ ! -e $SCRATCH/files/new2.img ]] || fail "the dry run created new2.img"
    expect_unchanged "$before"
}

run_case "refusals" refusals
run_case "the plan" plan_text
run_case "the plan as JSON" plan_json

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
