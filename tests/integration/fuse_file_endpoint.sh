#!/usr/bin/env bash
# A regular file on FUSE, given to kcopy as it is (no loop device), is never
# served by io_uring: on FUSE direct I/O io_uring completes a partly failed
# request with its full length (Linux 6.18), which turned a failure into exit 0
# and wrong data. kcopy gives such a file libaio, whatever the other endpoints
# get, and -v names each endpoint's method:
#   - a FUSE source with sectors 20000-20002 unreadable: exit 64, the report
#     names exactly those sectors; with --ignore-errors exactly they are zero
#     in the copy and every other sector is the source's;
#   - a FUSE destination whose sectors 5000-5007 refuse writes: exit 1, the
#     report names exactly them (--ignore-errors), and the rest is exact;
#   - --io-engine io_uring asked for: the FUSE file still gets libaio;
#   - one copy from a loop device to a FUSE file and an NBD export at once:
#     both exact, and -v says io_uring, libaio and libnbd.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_faulty_disk
command -v jq >/dev/null || skip "jq not installed"

SECTORS=65536 # 32 MiB


src_img=$(make_image src.img 32M)
src_orig=$(pristine_copy "$src_img")
fsrc=$(faulty_file "$src_img" --read-error 20000:3)

check "no --ignore-errors: exit 64, the report names sectors 20000+3 exactly"
expect_status 64 "$KCOPY" --json "$fsrc" "$SCRATCH/o1.img"
expect_json '[.source.errors[] | {sector, count, error}]' '[{"sector":20000,"count":3,"error":"EIO"}]'

check "--ignore-errors: exactly sectors 20000-20002 are zero, every other sector is the source's"
expect_status 64 "$KCOPY" --json --ignore-errors "$fsrc" "$SCRATCH/o2.img"
expect_json '[.source.errors[] | {sector, count, error}]' '[{"sector":20000,"count":3,"error":"EIO"}]'
expect_same_sectors "before the bad sectors" "$src_orig" 0 "$SCRATCH/o2.img" 0 20000
expect_zero_sectors "the bad sectors" "$SCRATCH/o2.img" 20000 3
expect_same_sectors "after the bad sectors" "$src_orig" 20003 "$SCRATCH/o2.img" 20003 $((SECTORS - 20003))

check "-v with --io-engine io_uring: the FUSE file is still read through libaio"
expect_status 64 "$KCOPY" -v --io-engine io_uring "$fsrc" "$SCRATCH/o3.img"
expect_stderr_has "'$fsrc': I/O through libaio"
expect_stderr_has "'$SCRATCH/o3.img': I/O through io_uring"

d_img=$(make_image d.img 32M)
d_orig=$(pristine_copy "$d_img")
fdst=$(faulty_file "$d_img" --write-error 5000:8)

check "a FUSE file destination refusing sectors 5000-5007: exit 1, exactly those sectors with --ignore-errors"
expect_status 1 "$KCOPY" --json --ignore-errors "$src_img" "$fdst"
expect_json '[.destinations[0].errors[] | {sector, count, error}]' '[{"sector":5000,"count":8,"error":"EIO"}]'
expect_same_sectors "before the bad sectors" "$src_orig" 0 "$d_img" 0 5000
expect_same_sectors "the bad sectors keep their old data" "$d_orig" 5000 "$d_img" 5000 8
expect_same_sectors "after the bad sectors" "$src_orig" 5008 "$d_img" 5008 $((SECTORS - 5008))

check "without --ignore-errors: exit 1 and a range that contains sectors 5000-5007"
cp -- "$d_orig" "$d_img"
expect_status 1 "$KCOPY" --json "$src_img" "$fdst"
expect_json '[.destinations[0].errors[] | select(.sector <= 5000 and .sector + .count >= 5008)] | length' 1
expect_json '.destinations[0].status' '"write_error"'

if [[ -x ${KCOPY_BUILD_ROOT:-$(dirname "$KCOPY")}/kcopy-nbd ]] && command -v nbdkit >/dev/null; then
    source "$TESTS_DIR/nbd_lib.sh"
    loop_src=$(attach "$src_img")
    m_img=$(make_image m.img 32M)
    fm=$(faulty_file "$m_img")
    n_img=$(make_image n.img 32M)
    nbd_start n file "$n_img"
    check "one copy: loop device -> FUSE file + NBD export, exact, each endpoint on its own method"
    expect_status 0 "$KCOPY" -v "$loop_src" "$fm" "$NBD_URI"
    expect_stderr_has "'$loop_src': I/O through io_uring"
    expect_stderr_has "'$fm': I/O through libaio"
    expect_stderr_has ": I/O through libnbd"
    expect_same_sectors "the FUSE destination" "$src_orig" 0 "$m_img" 0 $SECTORS
    expect_same_sectors "the NBD destination" "$src_orig" 0 "$n_img" 0 $SECTORS
else
    echo "(no kcopy-nbd or nbdkit: the mixed copy is not tried)"
fi
pass
