#pragma once
// What one run of the command found and did, filled in as it goes: the JSON
// report (--json) and the dry run's plan are written from it.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kcopy/kcopyd.hpp"

namespace kcopy {

/// One region of the command line, as far as setup got with it.
struct RegionRecord {
  std::string role;      ///< "source", "destination 2"
  std::string argument;  ///< as typed
  /// Once parsed: the path, and the SECTOR and COUNT typed (unset: the
  /// default); once planned, both as the copy uses them, in 512-byte sectors.
  std::optional<std::string> path;
  std::optional<std::uint64_t> sector;
  std::optional<std::uint64_t> count;
  /// Once opened (or, in a dry run, checked):
  bool opened = false;
  bool is_block = false;
  std::uint64_t size_bytes = 0;           ///< now (0 for a file a dry run would create)
  std::uint32_t logical_block_size = 0;   ///< BLKSSZGET, or 512 for a file
  bool direct = false;                    ///< O_DIRECT (false with --buffered, or where refused)
  bool written = false;                   ///< opened for writing (a dry run: read-only, but would be)
  bool exclusive = false;                 ///< opened (a dry run: checked) with O_EXCL
  bool would_create = false;              ///< a dry run: a missing file the copy would create
  std::string symlink_target;             ///< a dangling symlink: the file created where it leads
  std::optional<std::uint64_t> grows_to;  ///< a file the copy extends: its new size in bytes
  unsigned nbd_connections = 0;           ///< an NBD export: its connections (else 0)
};

/// How the copy is (or, in a dry run, would be) done.
struct EngineRecord {
  std::string engine;            ///< "io_uring", "libaio", "sync"
  std::string reason;            ///< why (as -v says)
  std::uint64_t io_size = 0;     ///< bytes per sub-job
  std::uint64_t sub_jobs = 0;    ///< how many the copy is split into
  std::uint64_t pool_pages = 0;  ///< 4 KiB pages of the page pool
  std::uint64_t in_flight = 0;   ///< sub-jobs in flight at most: the pool's buffers, or the sub-jobs when fewer
  bool descending = false;       ///< memmove order: a destination overlaps the source from above
  unsigned overlapping = 0;      ///< bit d: destination d+1 overlaps the source (its writes wait for the reads)
};

/// One run: the regions (0 the source, i destination i; with --zero every one a
/// destination), then what happened.
/// --mapfile: the record of the copy in GNU ddrescue's format.
struct MapfileRecord {
  std::string path;
  bool existed = false;                     ///< the copy resumed from it
  std::uint64_t finished_bytes_before = 0;  ///< bytes '+' inside the copied range at the start
  std::uint64_t finished_bytes = 0;         ///< ... at the end (the start, in a dry run)
  std::uint64_t bytes_to_copy = 0;          ///< what this run set out to copy
};

struct RunRecord {
  bool dry_run = false;
  bool zeroing = false;  ///< --zero: no source; regions[i] is destination i + 1
  std::vector<RegionRecord> regions;
  std::optional<EngineRecord> engine;    ///< once chosen
  std::optional<MapfileRecord> mapfile;  ///< with --mapfile, once read
  std::optional<JobResult> result;       ///< once the copy ran
  int stop_signal = 0;                   ///< the first SIGINT, SIGTERM or SIGHUP received, or 0
  double seconds = 0;                    ///< the copy's wall-clock time
  std::optional<std::string> error;      ///< why nothing was copied (exit status 128)
  int exit_status = 0;
};

}  // namespace kcopy
