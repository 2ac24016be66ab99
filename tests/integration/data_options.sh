#!/usr/bin/env bash
# The data options of dm-kcopyd and beyond (issue 9), on real loop devices, each
# also with a second destination that fails (a loop device on a full tmpfs):
#   --zero DEST...    every region reads as zeroes, bytes around it untouched,
#                     also on a 4Kn device with an unaligned head and tail;
#   --write-seq       each destination's writes issued in ascending order
#                     (strace of kcopy's io_submit / io_uring_enter is not
#                     needed: the order is checked with --io-engine sync, whose
#                     pwrite64 calls strace shows one by one);
#   --throttle 30     takes at least 1.8x the unthrottled time of the same copy
#                     (the fastest of three: a busy machine slows one run);
#   --max-rate 20M    64 MiB take 3.2 s +- 20%;
#   --sparse          a 256 MiB image with 3 MiB of data and 8 MiB of written
#                     zeroes becomes a file that allocates <= 5 MiB and equals
#                     the source; onto a loop device full of random bytes: exact.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy
need_python

# A destination that fails past its first 4 MiB (ENOSPC on a full tmpfs).
full=$(tmpfs_full_device 4M 64M)

# expect_full_failed: destination 2 ($full) failed with a write error, exit 2 checked by the caller.
expect_full_failed() {
    stderr_line_with "^kcopy: destination 2 '$full': write error at sectors " || fail "no write error for destination 2"
    empty_full_device "$full"
}

zero_regions() {
    local img dev
    img=$(make_image zero.img 16M)
    orig=$(pristine_copy "$img")
    dev=$(attach "$img")
    check "--zero DEV:100:8000 FILE:16:8000: both ranges read as zeroes, nothing around them changes"
    truncate -s 8M "$SCRATCH/zf.img"
    head -c 8M /dev/urandom >"$SCRATCH/zf.img"
    cp "$SCRATCH/zf.img" "$SCRATCH/zf.orig"
    kcopy_ok --zero "$dev:100:8000" "$SCRATCH/zf.img:16"
    expect_zero_sectors "device range" "$dev" 100 8000
    expect_same_sectors "device before" "$dev" 0 "$orig" 0 100
    expect_same_sectors "device after" "$dev" 8100 "$orig" 8100 $((32768 - 8100))
    expect_zero_sectors "file range" "$SCRATCH/zf.img" 16 8000
    expect_same_sectors "file before" "$SCRATCH/zf.img" 0 "$SCRATCH/zf.orig" 0 16
    expect_same_sectors "file after" "$SCRATCH/zf.img" 8016 "$SCRATCH/zf.orig" 8016 $((16384 - 8016))
    check "--zero with destination 2 on a full tmpfs: exit 2, destination 1 zeroed"
    restore_device "$dev" "$orig"
    expect_status 2 "$KCOPY" --zero "$dev:0:16384" "$full:0"
    expect_full_failed
    expect_zero_sectors "destination 1" "$dev" 0 16384
}

zero_4kn() {
    local img orig dev
    img=$(make_image z4k.img 8M)
    orig=$(pristine_copy "$img")
    dev=$(attach "$img" --sector-size 4096)
    (($(blockdev --getss "$dev") == 4096)) || skip "no 4Kn loop devices here"
    check "--zero on a 4Kn device, unaligned head and tail (sectors 3+1000): exact"
    kcopy_ok --zero "$dev:3:1000"
    expect_zero_sectors "range" "$dev" 3 1000
    expect_same_sectors "before" "$dev" 0 "$orig" 0 3
    expect_same_sectors "after" "$dev" 1003 "$orig" 1003 $((16384 - 1003))
}

write_seq() {
    command -v strace >/dev/null || skip "strace not installed"
    local src d
    src=$(attach "$(make_image ws_src.img 8M)")
    d=$(attach "$(make_image ws_dst.img 8M)")
    check "--write-seq: each destination's writes are issued in ascending order (strace, --io-engine sync)"
    expect_status 0 strace -f -qq -e trace=pwrite64 -o "$SCRATCH/ws.trace" \
        "$KCOPY" --write-seq --io-engine sync --io-size 64K "$src" "$d"
    "$PYTHON" - "$SCRATCH/ws.trace" <<'PY' || fail "writes out of order (see above)"
import re, sys
offs = {}
for line in open(sys.argv[1]):
    m = re.search(r"pwrite64\((\d+), .*, (\d+)\) = ", line)
    if m:
        offs.setdefault(m.group(1), []).append(int(m.group(2)))
assert offs, "no pwrite64 seen"
for fd, o in offs.items():
    if o != sorted(o):
        print(f"fd {fd}: {o[:20]}", file=sys.stderr); sys.exit(1)
print(f"    {sum(map(len, offs.values()))} writes, ascending on every destination", file=sys.stderr)
PY
    expect_same_sectors "copy" "$d" 0 "$src" 0 16384
    check "--write-seq --ignore-errors with destination 2 failing: a notice, exit 2 (the error drops it)"
    scramble "$d" 8  # so that destination 1's check below sees this copy, not the last one
    expect_status 2 "$KCOPY" --write-seq --ignore-errors "$src:0:16384" "$d" "$full"
    expect_stderr_has "--write-seq"
    expect_full_failed
    expect_same_sectors "destination 1" "$d" 0 "$src" 0 16384
}

# scramble DEV MIB: random bytes over the first MIB MiB of DEV, so that a check
# after the next copy cannot pass on what an earlier copy left there.
scramble() {
    dd if=/dev/urandom of="$1" bs=1M count="$2" oflag=direct status=none || fail "cannot scramble $1"
}

# timed SECONDS_VAR CMD...: run CMD (must exit 0), store its wall time in SECONDS_VAR.
timed() {
    local var=$1 t0 t1
    shift
    t0=${EPOCHREALTIME/./}
    expect_status 0 "$@"
    t1=${EPOCHREALTIME/./}
    printf -v "$var" '%s' $((t1 - t0))
}

pacing() {
    local src d plain throttled rated t i
    src=$(attach "$(make_image p_src.img 64M)")
    d=$(attach "$(make_image p_dst.img 64M)")
    plain=
    for i in 1 2 3; do
        timed t "$KCOPY" --io-size 64K "$src" "$d"
        [[ -z $plain ]] || ((t >= plain)) || plain=$t
        [[ -n $plain ]] || plain=$t
    done
    timed throttled "$KCOPY" --io-size 64K --throttle 30 "$src" "$d"
    printf '    unthrottled %d ms (fastest of 3), --throttle 30 %d ms\n' $((plain / 1000)) $((throttled / 1000))
    check "--throttle 30 takes at least 1.8x the time of the same copy unthrottled"
    ((throttled * 10 >= 18 * plain)) ||
        fail "--throttle 30: ${throttled} us against ${plain} us unthrottled"
    check "--max-rate 20M: 64 MiB take 3.2 s +- 20%"
    timed rated "$KCOPY" --max-rate 20M "$src" "$d"
    printf '    --max-rate 20M: %d ms\n' $((rated / 1000))
    ((rated >= 2560000 && rated <= 3840000)) || fail "--max-rate 20M took ${rated} us"
    expect_same_sectors "copy" "$d" 0 "$src" 0 131072
    check "--max-rate 200M with destination 2 failing: exit 2, destination 1 exact"
    scramble "$d" 8
    expect_status 2 "$KCOPY" --max-rate 200M "$src:0:16384" "$d" "$full"
    expect_full_failed
    expect_same_sectors "destination 1" "$d" 0 "$src" 0 16384
}

sparse() {
    local img d rnd
    img=$SCRATCH/sparse_src.img
    truncate -s 256M "$img"
    # 3 MiB of data in three 1 MiB pieces, 8 MiB of written zeroes.
    for mib in 10 100 200; do head -c 1M /dev/urandom | dd of="$img" bs=1M seek="$mib" conv=notrunc status=none; done
    dd if=/dev/zero of="$img" bs=1M seek=50 count=8 conv=notrunc status=none
    check "--sparse of a 256 MiB image with 3 MiB of data to a new file: <= 5 MiB allocated, equal to the source"
    kcopy_ok --sparse "$img" "$SCRATCH/sparse_out.img"
    cmp "$img" "$SCRATCH/sparse_out.img" || fail "the sparse copy differs from the source"
    local kib
    kib=$(du -k "$SCRATCH/sparse_out.img" | cut -f1)
    printf '    allocated: %d KiB\n' "$kib"
    ((kib <= 5120)) || fail "the sparse copy allocates $kib KiB"
    check "--sparse onto a loop device full of random bytes: exact"
    rnd=$(attach "$(make_image sparse_rnd.img 256M)")
    kcopy_ok --sparse "$img" "$rnd"
    expect_same_sectors "sparse copy over old data" "$rnd" 0 "$img" 0 524288
    check "--sparse with destination 2 failing: exit 2, destination 1 exact"
    expect_status 2 "$KCOPY" --sparse "$img:20480:16384" "$rnd" "$full"
    expect_full_failed
    expect_same_sectors "destination 1" "$rnd" 0 "$img" 20480 16384
}

run_case "--zero" zero_regions
run_case "--zero on a 4Kn device" zero_4kn
run_case "--write-seq" write_seq
run_case "--throttle and --max-rate" pacing
run_case "--sparse" sparse

((${#failed[@]} == 0)) || fail "failed: ${failed[*]}"
pass
