#!/usr/bin/env bash
# qemu-nbd serving a qcow2 image, as users run it (`qemu-nbd -f qcow2 -k SOCK
# IMAGE`: one client at a time, the server ends when its client goes):
#   - as a destination, with a source range and a destination offset: exit 0,
#     the server ends by itself after kcopy (kcopy let go of it), `qemu-img
#     check` finds the image clean, and the image read back with `qemu-img
#     convert` to raw is exactly the model: zeroes, the source's sectors in
#     the range;
#   - a whole copy to a qcow2 export (persistent, shared), read back through
#     the server with nbdcopy and, once it is gone, with qemu-img convert;
#   - a read-only qcow2 export as the source, to a loop device: exact.
# Skipped (77) without qemu-nbd.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$TESTS_DIR/nbd_lib.sh"
need_root
need_kcopy
need_qemu_nbd
command -v nbdcopy >/dev/null || skip "nbdcopy not installed (apt-get install libnbd-bin)"

src_img=$(make_image src.img 32M) # 65536 sectors
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
dl_img=$(make_image dl.img 32M)
dl_orig=$(pristine_copy "$dl_img")
dl=$(attach "$dl_img")

# qcow2_raw IMAGE RAW: IMAGE (qcow2) checked with qemu-img check and converted
# to the raw file RAW.
qcow2_raw() {
    qemu-img check -q -f qcow2 "$1" || fail "qemu-img check: $1 is not a clean qcow2 image"
    rm -f -- "$2"
    qemu-img convert -f qcow2 -O raw "$1" "$2" || fail "qemu-img convert could not read $1"
}

# wait_server_gone NAME: qemu-nbd without -t ends once its client has gone.
wait_server_gone() {
    local pid
    pid=$(nbd_pid "$1")
    wait_gone "$pid" 10 || fail "qemu-nbd ($1) still runs 10 s after kcopy ended: kcopy left a connection open?"
}

destination_range() {
    local img=$SCRATCH/d1.qcow2 want=$SCRATCH/want1.raw
    qemu-img create -q -f qcow2 "$img" 40M || fail "qemu-img create failed"
    qemu_nbd_start q1 -f qcow2 "$img"
    check "loop -> qcow2 over qemu-nbd: kcopy $src:2048:16M $NBD_URI:1000 exits 0"
    kcopy_ok "$src:2048:16M" "$NBD_URI:1000"
    wait_server_gone q1
    check "the image, read with qemu-img convert, is zeroes with the source's sectors 2048.. at sector 1000"
    qcow2_raw "$img" "$SCRATCH/d1.raw"
    truncate -s 40M "$want"
    model_copy "$want" "$src_orig" 2048 1000 32768
    expect_matches_model "the qcow2 image's contents" "$SCRATCH/d1.raw" "$want"
}

destination_whole() {
    local img=$SCRATCH/d2.qcow2
    qemu-img create -q -f qcow2 "$img" 32M || fail "qemu-img create failed"
    qemu_nbd_start q2 -t -e 4 -f qcow2 "$img"
    check "loop -> qcow2 over qemu-nbd (-t -e 4), whole: kcopy $src $NBD_URI exits 0"
    kcopy_ok "$src" "$NBD_URI"
    check "read back through the server with nbdcopy: exact"
    nbd_fetch "$NBD_URI" "$SCRATCH/d2.fetched"
    expect_matches_model "the export" "$SCRATCH/d2.fetched" "$src_orig"
    nbd_kill q2
    check "read back with qemu-img convert: exact"
    qcow2_raw "$img" "$SCRATCH/d2.raw"
    expect_matches_model "the qcow2 image's contents" "$SCRATCH/d2.raw" "$src_orig"
}

source_qcow2() {
    local img=$SCRATCH/s.qcow2
    qemu-img convert -q -f raw -O qcow2 "$src_orig" "$img" || fail "qemu-img convert to qcow2 failed"
    qemu_nbd_start q3 -r -f qcow2 "$img"
    restore_device "$dl" "$dl_orig"
    check "read-only qcow2 over qemu-nbd -> loop: kcopy $NBD_URI $dl exits 0, exact"
    kcopy_ok "$NBD_URI" "$dl"
    expect_matches_model "the loop device" "$dl" "$src_orig"
    wait_server_gone q3
}

run_case "a qcow2 destination with ranges" destination_range
run_case "a whole qcow2 destination, read back two ways" destination_whole
run_case "a qcow2 source" source_qcow2

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
