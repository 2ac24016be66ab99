#!/usr/bin/env bash
# The lost-writes fixture that --verify is tested with keeps its word: on a
# faulty_device made with --lose-writes, a write over lost sectors succeeds,
# the lost sectors keep their old bytes, the rest of the same write is stored,
# other writes are stored whole, reads are not affected, and the log names each
# write that lost bytes ("lost OFFSET SIZE").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
need_faulty_disk

img=$(make_image disk.img 1M)
orig=$(pristine_copy "$img")
pattern=$(make_image pattern.bin 8K) # 16 sectors
printf '# from a file, as --lose-writes-from reads it\n600 4\n' >"$SCRATCH/lost.txt"
dev=$(faulty_device "$img" --lose-writes 100:8 --lose-writes-from "$SCRATCH/lost.txt")
log=$(faulty_log "$img")

# write_at SECTOR COUNT PATTERN_SECTOR: one O_DIRECT write of COUNT sectors of
# the pattern (from PATTERN_SECTOR) at SECTOR of $dev; fails unless dd succeeds.
write_at() {
    dd if="$pattern" of="$dev" bs=$(($2 * 512)) count=1 iflag=skip_bytes oflag=seek_bytes,direct \
        skip=$(($3 * 512)) seek=$(($1 * 512)) conv=notrunc status=none ||
        fail "an O_DIRECT write of sectors $1+$2 to $dev failed"
}

check "one 8 KiB write over sectors 96-111 (lost: 100-107) succeeds"
# bs=8K: one request, so that one FUSE write straddles the lost range.
dd if="$pattern" of="$dev" bs=8K seek=6 count=1 oflag=direct conv=notrunc status=none ||
    fail "the write over the lost sectors failed; it should succeed"

check "sectors 96-99 and 108-111 hold the write, 100-107 their old bytes"
expect_same_sectors "written before the lost range" "$dev" 96 "$pattern" 0 4
expect_same_sectors "lost sectors" "$dev" 100 "$orig" 100 8
expect_same_sectors "written after the lost range" "$dev" 108 "$pattern" 12 4
expect_same_sectors "the backing image: lost sectors" "$img" 100 "$orig" 100 8
expect_same_sectors "the backing image: written sectors" "$img" 108 "$pattern" 12 4

check "a write inside the lost range stores nothing; one from --lose-writes-from loses its sectors too"
write_at 102 2 0
write_at 598 4 0
expect_same_sectors "lost sectors after a write inside them" "$dev" 100 "$orig" 100 8
expect_same_sectors "written before the range from the file" "$dev" 598 "$pattern" 0 2
expect_same_sectors "lost sectors from the file" "$dev" 600 "$orig" 600 2

check "a write elsewhere is stored whole; nothing else changed"
write_at 200 16 0
expect_same_sectors "a write away from the lost ranges" "$dev" 200 "$pattern" 0 16
expect_same_sectors "sectors 0-95" "$dev" 0 "$orig" 0 96
expect_same_sectors "sectors 112-199" "$dev" 112 "$orig" 112 88
expect_same_sectors "sectors 216-597" "$dev" 216 "$orig" 216 382
expect_same_sectors "sectors 602-2047" "$dev" 602 "$orig" 602 1446

check "the log names exactly the three writes that lost bytes"
grep '^lost ' "$log" >"$SCRATCH/lost.log" || true
printf 'lost %s %s\n' $((96 * 512)) 8192 $((102 * 512)) 1024 $((598 * 512)) 2048 >"$SCRATCH/want.log"
diff -u --label expected --label "$log" "$SCRATCH/want.log" "$SCRATCH/lost.log" >&2 ||
    fail "the log's 'lost' lines are not the writes that lost bytes (diff above)"

pass
