#!/usr/bin/env bash
# On devices with 4096-byte logical blocks (4Kn loop devices), ranges that do
# not start or end on a 4096-byte boundary copy exactly, and the destination
# bytes outside the range stay untouched, including the sectors that share a
# 4 KiB block with the range's first or last sector.  A 4Kn source with a
# 512-byte destination and the reverse work, and so do aligned copies.
# Every case runs (in a subshell) even when an earlier one fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

# 16 MiB each = 32768 sectors; every image different random data.
declare -A orig img
for name in src4k dst4k src512 dst512; do
    img[$name]=$(make_image "$name.img" 16M)
    orig[$name]=$(pristine_copy "${img[$name]}")
done
declare -A dev
dev[src4k]=$(attach "${img[src4k]}" --sector-size 4096)
dev[dst4k]=$(attach "${img[dst4k]}" --sector-size 4096)
dev[src512]=$(attach "${img[src512]}")
dev[dst512]=$(attach "${img[dst512]}")
for name in src4k dst4k; do
    [[ $(blockdev --getss "${dev[$name]}") == 4096 ]] ||
        skip "losetup --sector-size 4096 did not give 4096-byte logical blocks on ${dev[$name]}"
done
[[ $(blockdev --getss "${dev[dst512]}") == 512 ]] || fail "${dev[dst512]} does not have 512-byte logical blocks"
SECTORS=32768
expected=$SCRATCH/expected.img

failed=()
# copy_case SRC SS COUNT DST DS [KCOPY OPTIONS...]: kcopy OPTIONS
# $dev[SRC]:SS:COUNT $dev[DST]:DS exits 0; the destination range equals the
# source's, the sectors just before and after (and the rest of their 4 KiB
# blocks, and the whole device) are untouched, the source unchanged.  Runs in
# a subshell; a failure is recorded and the next case goes on.
copy_case() {
    local s=$1 ss=$2 count=$3 d=$4 ds=$5 rc
    shift 5
    printf '\n== %s:%s:%s -> %s:%s%s\n' "$s" "$ss" "$count" "$d" "$ds" "${*:+ ($*)}"
    set +e
    (
        set -e
        local sdev=${dev[$s]} ddev=${dev[$d]} before after lo hi
        restore_device "$ddev" "${orig[$d]}"
        cp -- "${orig[$d]}" "$expected"
        model_copy "$expected" "${orig[$s]}" "$ss" "$ds" "$count"

        kcopy_ok "$@" "$sdev:$ss:$count" "$ddev:$ds"

        check "destination sectors $ds+$count equal source sectors $ss+$count"
        expect_same_sectors "copied range" "$ddev" "$ds" "${orig[$s]}" "$ss" "$count"
        # The sectors around the range, up to the 4 KiB block boundaries (at
        # least one sector each side): a read-modify-write must keep them.
        lo=$((ds / 8 * 8))
        ((lo < ds)) || lo=$((ds - 1))
        ((lo >= 0)) || lo=0
        hi=$(((ds + count + 7) / 8 * 8))
        ((hi > ds + count)) || hi=$((ds + count + 1))
        ((hi <= SECTORS)) || hi=$SECTORS
        before=$((ds - lo))
        after=$((hi - ds - count))
        if ((before > 0)); then
            check "the $before sector(s) before the range (sectors $lo..$((ds - 1))) are unchanged"
            expect_same_sectors "sectors before the range" "$ddev" "$lo" "${orig[$d]}" "$lo" "$before"
        fi
        if ((after > 0)); then
            check "the $after sector(s) after the range (sectors $((ds + count))..$((hi - 1))) are unchanged"
            expect_same_sectors "sectors after the range" "$ddev" $((ds + count)) "${orig[$d]}" $((ds + count)) "$after"
        fi
        check "the whole destination is the original with only that range replaced"
        expect_matches_model "whole destination" "$ddev" "$expected"
        check "the source is unchanged"
        expect_matches_model "source" "$sdev" "${orig[$s]}"
    )
    rc=$?
    set -e
    if ((rc != 0)); then
        failed+=("$s:$ss:$count -> $d:$ds${*:+ ($*)}")
        restore_device "${dev[$s]}" "${orig[$s]}"
    fi
}

# 4Kn to 4Kn, unaligned.
copy_case src4k 1 15 dst4k 1           # head unaligned, ends on a block boundary
copy_case src4k 1 15 dst4k 9           # both in the same phase, another block
copy_case src4k 3 1000 dst4k 5         # different phases, both ends unaligned
copy_case src4k 8 7 dst4k 8            # inside one block, aligned start
copy_case src4k 8 7 dst4k 17           # inside one block, in its middle
copy_case src4k 2 3 dst4k 3            # 3 sectors in the middle of one block
copy_case src4k 5 1 dst4k 12           # a single sector
copy_case src4k 0 8 dst4k 3            # one aligned source block onto two blocks
copy_case src4k 7 2 dst4k 7            # crosses a block boundary: 1 + 1 sector
copy_case src4k 32765 3 dst4k 5        # the source's last 3 sectors
copy_case src4k 0 5 dst4k 32763        # up to the destination's last sector
copy_case src4k 0 3 dst4k 32765        # the destination's last 3 sectors
copy_case src4k 5 20000 dst4k 4099 --io-size 64K  # many sub-jobs, unaligned both ends
copy_case src4k 5 20000 dst4k 4099     # defaults
copy_case src4k 3 1000 dst4k 5 --buffered
copy_case src4k 3 1000 dst4k 5 --io-size 4K --pages 4
copy_case src4k 3 1000 dst4k 5 --no-flush
# 4Kn to 4Kn, aligned.
copy_case src4k 8 4096 dst4k 16
copy_case src4k 0 32768 dst4k 0
copy_case src4k 4096 8192 dst4k 16384 --io-size 64K
# 4Kn source, 512-byte destination.
copy_case src4k 3 1000 dst512 7
copy_case src4k 8 16 dst512 1
copy_case src4k 1 15 dst512 0
copy_case src4k 5 20000 dst512 4099 --io-size 64K
copy_case src4k 0 32768 dst512 0
# 512-byte source, 4Kn destination.
copy_case src512 1 15 dst4k 3
copy_case src512 0 8192 dst4k 8
copy_case src512 3 1000 dst4k 5
copy_case src512 9 20000 dst4k 4097 --io-size 64K
copy_case src512 0 32768 dst4k 0
# 512 to 512 (sanity, same code path as before).
copy_case src512 3 1000 dst512 5

if ((${#failed[@]})); then
    printf 'failed case: %s\n' "${failed[@]}" >&2
    fail "${#failed[@]} case(s) failed"
fi
pass
