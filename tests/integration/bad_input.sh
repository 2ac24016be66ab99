#!/usr/bin/env bash
# Every bad input is refused before anything is written: exit 128, exactly one
# line on stderr starting "kcopy: ", and no destination changed or created.
# Table-driven: every row runs (in a subshell) even when an earlier one fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_kcopy

src_img=$(make_image src.img 16M) # 32768 sectors
dst_img=$(make_image dst.img 16M)
src=$(attach "$src_img")
dst=$(attach "$dst_img")
dstfile=$(make_image dstfile.img 16M)
newfile=$SCRATCH/new.img # must never come into existence
adir=$SCRATCH/adir
mkdir "$adir"
nodev=/dev/nonexistent-kcopy
[[ ! -e $nodev ]] || skip "$nodev exists"

# Everything a row could write to, with a pristine copy to compare against.
watched=("$src" "$dst" "$dstfile")
declare -A orig=([$src]=$(pristine_copy "$src_img") [$dst]=$(pristine_copy "$dst_img")
    [$dstfile]=$(pristine_copy "$dstfile"))

# refused DESCRIPTION ARGS...: kcopy ARGS exits 128 with one "kcopy: " line
# (matching $WANT_MSG, a case-insensitive ERE, when set), and nothing watched
# changed, nothing new was created.
refused() {
    local desc=$1 w
    shift
    check "$desc: refused with 128, one 'kcopy: ' line${WANT_MSG:+ matching /$WANT_MSG/}, nothing written"
    expect_status 128 "$KCOPY" "$@"
    expect_one_error_line
    if [[ -n ${WANT_MSG:-} ]]; then
        (shopt -s nocasematch; stderr_line_with "$WANT_MSG") ||
            fail "$desc: the message does not match /$WANT_MSG/"
    fi
    for w in "${watched[@]}"; do
        expect_matches_model "$desc: $w unchanged" "$w" "${orig[$w]}"
    done
    [[ ! -e $newfile ]] || fail "$desc: $newfile was created"
    [[ ! -e $nodev ]] || fail "$desc: kcopy created $nodev"
    expect_no_stray_files "$src" "$dst" "$dstfile" "$newfile"
    [[ -z $(ls -A "$adir") ]] || fail "$desc: something was created in $adir"
}

# Put everything back as it was, so a failed row cannot fail the next one.
reset_watched() {
    restore_device "$src" "${orig[$src]}"
    restore_device "$dst" "${orig[$dst]}"
    cp -- "${orig[$dstfile]}" "$dstfile"
    rm -rf -- "$newfile" "$nodev" "${adir:?}"/* "$src":* "$dst":* "$dstfile":*
}

failed=()
# row DESCRIPTION ARGS...: run one row; record it when it fails, go on.
# row_says ERE DESCRIPTION ARGS...: the same, and the message must match ERE
# (used only where any clear message has to contain it).
row() {
    local rc
    set +e
    (
        set -e
        refused "$@"
    )
    rc=$?
    set -e
    if ((rc != 0)); then
        failed+=("$1")
        reset_watched
    fi
}
row_says() {
    local WANT_MSG=$1
    shift
    row "$@"
}

seven=()
for off in 0 100 200 300 400 500 600; do seven+=("$dst:$off"); done

row "no arguments"
row "only a source" "$src"
row_says "no-such-source" "a source that does not exist" "$SCRATCH/no-such-source" "$dst"
row_says "nonexistent-kcopy" "a destination that does not exist in /dev" "$src:0:8" "$nodev"
row "an empty SECTOR field" "$src:" "$dst"
row "an empty SECTOR before a COUNT" "$src::8" "$dst"
row "an empty COUNT field" "$src:0:" "$dst"
row "an empty destination field" "$src:0:8" "$dst:"
row "garbage in a number" "$src:12x" "$dst"
row "a hex prefix without digits" "$src:0x:8" "$dst"
row "a bad hex digit" "$src:0xg:8" "$dst"
row "a negative SECTOR" "$src:-1" "$dst"
row "a negative COUNT" "$src:0:-8" "$dst"
row "three fields" "$src:1:2:3" "$dst"
row "a SECTOR beyond 64 bits" "$src:99999999999999999999" "$dst"
row "a SECTOR that wraps 64 bits to 2" "$src:18446744073709551618:8" "$dst"
row "a SECTOR whose byte offset wraps 64 bits to sector 1" "$src:36028797018963969:8" "$dst"
row "a byte size that wraps 64 bits to 1 KiB" "$src:18014398509481985K:8" "$dst"
row "a COUNT so large SECTOR+COUNT wraps" "$src:8:18446744073709551615" "$dst"
row "a zero COUNT" "$src:0:0" "$dst"
row "a source range past the end of the source" "$src:32000:1000" "$dst"
row "a source starting past its end" "$src:40000" "$dst"
row "a source starting exactly at its end (nothing to copy)" "$src:32768" "$dst"
row "a source range past its end, to a new file" "$src:32000:1000" "$newfile"
row "a destination range past the end of a block device" "$src:0:2048" "$dst:32000"
row "a whole-device destination offset past its end" "$src" "$dst:1"
row "a destination COUNT different from the source's" "$src:0:2048" "$dst:0:1024"
row "a destination COUNT different from the source's, on a file" "$src:0:8" "$dstfile:0:16"
row_says "6|7|destinations" "7 destinations" "$src:0:8" "${seven[@]}"
row_says "overlap" "two destinations overlapping on one device" "$src:0:2048" "$dst:0" "$dst:1000"
row_says "overlap" "two destinations overlapping by one sector" "$src:0:2048" "$dst:0" "$dst:2047"
row_says "overlap|same|twice" "the same destination twice" "$src:0:8" "$dst:100" "$dst:100"
row_says "opposite sides" "two destinations overlapping the source from opposite sides" "$src:1000:2048" "$src:2500" "$src:0"
row_says "source range itself" "the destination range equal to the source range" "$src:0:8" "$src:0"
row_says "99999|end|small|size|large|beyond" "a good destination and a bad one (nothing written to the good one)" "$src:0:8" "$dst:0" "$dst:99999"
row "an unknown option" --frobnicate "$src" "$dst"
row "--pages 0" --pages 0 "$src" "$dst"
row "--pages not a number" --pages abc "$src" "$dst"
row "--pages without its value" "$src" "$dst" --pages
row "--io-size 0" --io-size 0 "$src" "$dst"
row "--io-size not whole sectors" --io-size 1000 "$src" "$dst"
row "--io-size larger than the pool" --pages 1 --io-size 1M "$src" "$dst"
row "a directory as source" "$adir" "$dst"
row "a directory as destination" "$src:0:8" "$adir"
row "/dev/null as destination" "$src:0:8" /dev/null
row "a character device as source" /dev/zero "$dst"

# A mounted file system's device is in use: refused unless --force.  Its first
# two sectors (below ext4's superblock) must stay as they were.
if command -v mkfs.ext4 >/dev/null; then
    fs_img=$(make_image fs.img 16M)
    fs=$(attach "$fs_img")
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$fs" || fail "mkfs.ext4 $fs failed"
    mnt=$(mount_device "$fs")
    fs_head=$(sectors_sha "$fs" 0 2)
    row_says "in use.*--force|--force.*in use" "a mounted loop device as destination" "$src:0:2" "$fs"
    [[ $(sectors_sha "$fs" 0 2) == "$fs_head" ]] || { echo "FAIL: mounted device written" >&2; failed+=("mounted: written"); }
    mountpoint -q "$mnt" || failed+=("mounted: no longer mounted")
else
    echo "note: mkfs.ext4 missing, mounted-destination row not run"
fi

if ((${#failed[@]})); then
    printf 'failed row: %s\n' "${failed[@]}" >&2
    fail "${#failed[@]} row(s) failed"
fi
pass
