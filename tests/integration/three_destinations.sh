#!/usr/bin/env bash
# One source range copied to three destinations at different offsets lands
# byte-exact on each, and nothing else on any destination changes.  The same
# holds when the destinations are disjoint ranges of one device (opened once,
# even though block devices are opened O_EXCL), up to the limit of six.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

src_img=$(make_image src.img 32M)
src_orig=$(pristine_copy "$src_img")
src=$(attach "$src_img")
dst_img=() dst_orig=() dst=()
for i in 1 2 3; do
    dst_img[i]=$(make_image "dst$i.img" 32M)
    dst_orig[i]=$(pristine_copy "${dst_img[i]}")
    dst[i]=$(attach "${dst_img[i]}")
done

# --- three devices ---
offsets=([1]=0 [2]=100 [3]=8192)
check "$src:2048:8192 -> ${dst[1]}:0 ${dst[2]}:100 ${dst[3]}:8192 exits 0"
kcopy_ok "$src:2048:8192" "${dst[1]}:0" "${dst[2]}:100" "${dst[3]}:8192"
for i in 1 2 3; do
    off=${offsets[i]}
    check "destination $i: sectors $off..$((off + 8191)) equal source sectors 2048..10239"
    expect_same_sectors "destination $i range" "${dst[i]}" "$off" "$src_orig" 2048 8192
    if ((off > 0)); then
        check "destination $i: sector $((off - 1)) just before the range is unchanged"
        expect_same_sectors "destination $i sector before" "${dst[i]}" $((off - 1)) "${dst_orig[i]}" $((off - 1)) 1
    fi
    check "destination $i: sector $((off + 8192)) just after the range is unchanged"
    expect_same_sectors "destination $i sector after" "${dst[i]}" $((off + 8192)) "${dst_orig[i]}" $((off + 8192)) 1
    check "destination $i: everything outside the range is unchanged"
    expected=$(pristine_copy "${dst_orig[i]}" "$SCRATCH/expected.img")
    model_copy "$expected" "$src_orig" 2048 "$off" 8192
    expect_matches_model "destination $i whole device" "${dst[i]}" "$expected"
done
check "the source is unchanged"
expect_matches_model "source" "$src" "$src_orig"

# --- disjoint ranges of one device ---
# same_device_case OFFSET...: SRC:2048:1000 to DST1 at each OFFSET.
same_device_case() {
    local args=() off
    for off in "$@"; do args+=("${dst[1]}:$off"); done
    restore_device "${dst[1]}" "${dst_orig[1]}"
    expected=$(pristine_copy "${dst_orig[1]}" "$SCRATCH/expected.img")
    for off in "$@"; do model_copy "$expected" "$src_orig" 2048 "$off" 1000; done
    check "$# disjoint destinations on one device (${dst[1]} at $*) exit 0"
    kcopy_ok "$src:2048:1000" "${args[@]}"
    for off in "$@"; do
        expect_same_sectors "range at $off" "${dst[1]}" "$off" "$src_orig" 2048 1000
    done
    check "$# disjoint destinations on one device: every range copied, nothing else changed"
    expect_matches_model "one device, $# destinations" "${dst[1]}" "$expected"
}
same_device_case 0 10000 30000
# Adjacent ranges (one ends where the next begins) do not overlap; six is the maximum.
same_device_case 0 1000 2000 5000 20000 64536

pass
