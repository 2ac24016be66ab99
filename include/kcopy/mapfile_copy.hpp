#pragma once
// --mapfile: a copy done area by area from GNU ddrescue's mapfile, and recorded
// in it as it goes, so that a stopped copy resumes where it stopped and a rescue
// passes between kcopy and ddrescue.

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kcopy/copy_plan.hpp"
#include "kcopy/kcopyd.hpp"
#include "kcopy/mapfile.hpp"
#include "kcopy/run_record.hpp"

namespace kcopy {

/// The copy of `plan` driven by a mapfile. Positions in the mapfile are bytes on
/// the source; a new mapfile covers [0, the end of the copied range), the bytes
/// before the range non-tried.
///
/// The copy is cut into chunks, one job at a time on the client: the
/// non-finished areas of the range, non-tried ones ('?', and ddrescue's '*' and
/// '/') first, then bad ones ('-') with copy_ignore_errors. Each chunk is a job
/// of its own, flushed at its end (unless copy_no_flush), so when it is
/// notified its bytes are on the destinations, and become '+' if every
/// destination of the copy holds them. The chunk size adapts, between 1 MiB and
/// 256 MiB, so that a chunk takes about a quarter of the interval. Bad sectors
/// become '-', exactly; areas a destination failed to take stay non-tried. A
/// destination the engine drops (a write error without copy_ignore_errors) gets
/// nothing of later chunks, as in one job, and from then on nothing becomes '+'
/// (it lacks the rest): a rerun copies the rest again, to every destination. A
/// read error without copy_ignore_errors ends the copy.
class MapfileCopy {
 public:
  /// Reads `path` (none yet: a new rescue) and checks it against this copy:
  /// refuses (kcopy::Error, nothing written) a corrupt map (its line number),
  /// one with finished bytes past the end of the range (ddrescue's own rule;
  /// it is cut to the range otherwise), and one whose kcopy comments name
  /// another source or other destinations unless `force` (a map without them,
  /// from ddrescue, is taken). `endpoints[0]` names the source and
  /// `endpoints[d + 1]` destination d, as in the reports. `interval_seconds`:
  /// the mapfile is rewritten when a chunk ends and this long has passed since
  /// the last write, and at the end. No destination may overlap the source
  /// (chunks in flight together would not keep memmove's order, and a stopped
  /// copy onto its own source cannot be resumed).
  MapfileCopy(std::string path, const CopyPlan& plan, std::span<const EndpointInfo> endpoints, unsigned flags,
              bool force, double interval_seconds);

  /// What the copy will be, for the reports: the mapfile's name, the finished bytes, the
  /// bytes to copy.
  MapfileRecord record() const;
  /// Sectors this run will copy (for progress).
  std::uint64_t sectors_to_copy() const { return to_copy_sectors_; }

  /// Writes the mapfile (with this copy's comments) and queues the first chunks
  /// on `client`, whose notify functions queue the rest. Call client.wait()
  /// (or let its I/O thread run) until every job has ended, then finish().
  /// Throws kcopy::Error if the mapfile cannot be written (nothing queued).
  void start(KcopydClient& client);
  /// After the last job: rewrites the mapfile a last time and returns the
  /// result of the whole copy, as one job's (destinations in plan order;
  /// sectors_total is what this run copied). Bad areas the mapfile had that
  /// were not retried (no copy_ignore_errors) are read errors of it.
  JobResult finish();

 private:
  struct Area {
    std::uint64_t sector = 0;  // on the source
    std::uint64_t count = 0;
  };
  struct Chunk {
    Area area;
    std::vector<unsigned> dests;  // job destination j is plan destination dests[j]
    std::chrono::steady_clock::time_point started;
  };
  void queue_next();
  void chunk_done(const Chunk& chunk, const JobResult& r);
  void mark(std::uint64_t sector, std::uint64_t count, RescueStatus status);
  std::uint64_t finished_bytes() const;  // '+' inside the range
  void write_map();

  std::string path_;
  CopyPlan plan_;
  unsigned flags_;
  std::chrono::duration<double> interval_;
  RescueMap map_;
  std::vector<std::string> comments_;
  bool existed_ = false;
  std::uint64_t finished_before_ = 0;
  std::uint64_t range_begin_ = 0, range_end_ = 0;  // bytes on the source
  std::vector<Area> areas_;                        // to copy, in order
  std::vector<Area> bad_left_;                     // '-' areas not retried
  std::size_t next_area_ = 0;
  std::uint64_t next_offset_ = 0;  // sectors into areas_[next_area_]
  std::uint64_t to_copy_sectors_ = 0;
  std::uint64_t chunk_sectors_;
  KcopydClient* client_ = nullptr;
  unsigned live_ = 0;    // plan destinations still written
  bool ending_ = false;  // queue nothing more
  JobResult total_;
  std::chrono::steady_clock::time_point last_write_;
};

}  // namespace kcopy
