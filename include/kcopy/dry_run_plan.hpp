#pragma once
// -n, --dry-run: the plan it prints, from what setup found.

#include <string>

#include "kcopy/run_record.hpp"

namespace kcopy {

/// The plan of a copy that passed every check, for people (--dry-run without
/// --json), one fact a line, paths quoted:
///
///     kcopy dry run: every check passed; nothing was written or created
///     source         '/dev/loop0': sectors 0-65535 (65536 sectors, 33554432 bytes = 32.0 MiB)
///                    block device of 131072 sectors, logical block 512 bytes, O_DIRECT, read-only
///     destination 1  'new.img': sectors 0-65535 (65536 sectors, 33554432 bytes = 32.0 MiB)
///                    regular file, would be created with 33554432 bytes, logical block 512 bytes, O_DIRECT
///     I/O engine     io_uring (the fastest here)
///     sub-jobs       64 of 512 KiB, at most 4 in flight (page pool: 512 pages = 2.0 MiB)
///     order          ascending
///
/// `run` must have every region planned and opened, and its engine chosen.
std::string dry_run_plan(const RunRecord& run);

}  // namespace kcopy
