#include "kcopy/mapfile_copy.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "kcopy/error.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/units.hpp"

namespace kcopy {
namespace {

constexpr std::uint64_t min_chunk_sectors = bytes_to_sectors(1 << 20);
constexpr std::uint64_t max_chunk_sectors = bytes_to_sectors(256 << 20);
constexpr std::uint64_t first_chunk_sectors = bytes_to_sectors(16 << 20);
constexpr std::size_t range_capacity = 4096;  // failed ranges listed per endpoint over the whole copy

// Adds `from`'s ranges to `to` (the overflow as one range: the count is what matters).
void add_ranges(ErrorRanges& to, const ErrorRanges& from) {
  for (const ErrorRange& e : from.ranges()) to.add(e.sector, e.count, e.error);
  if (from.overflow_sectors()) to.add(from.overflow_from(), from.overflow_sectors(), EIO);
}

}  // namespace

MapfileCopy::MapfileCopy(std::string path, const CopyPlan& plan, std::span<const EndpointInfo> endpoints,
                         unsigned flags, bool force, double interval_seconds)
    : path_(std::move(path)),
      plan_(plan),
      flags_(flags),
      interval_(interval_seconds),
      chunk_sectors_(first_chunk_sectors) {
  range_begin_ = sectors_to_bytes(plan.from.sector);
  range_end_ = sectors_to_bytes(plan.from.sector + plan.from.count);
  if (range_end_ > mapfile_max_end)
    throw Error("--mapfile: the source range ends past what a mapfile can hold (2^63 bytes)");
  comments_.push_back(mapfile_source_comment(endpoints[0].path, plan.from.sector, plan.from.count));
  for (std::size_t d = 0; d < plan.dests.size(); ++d)
    comments_.push_back(mapfile_destination_comment(static_cast<unsigned>(d + 1), endpoints[d + 1].path,
                                                    plan.dests[d].sector, plan.dests[d].count));

  if (const std::optional<std::string> text = read_mapfile_text(path_)) {
    existed_ = true;
    ParsedMapfile parsed = parse_mapfile(*text, path_);
    std::vector<std::string> theirs;
    for (const std::string& c : parsed.comments)
      if (is_mapfile_identity_comment(c)) theirs.push_back(c);
    if (!theirs.empty() && theirs != comments_) {
      if (!force)
        throw Error("mapfile " + quote(path_) + " was written for another copy (" + printable(theirs[0]) +
                    "); use another FILE, or --force to use it for this one");
      spdlog::warn("mapfile {} was written for another copy ({}); used anyway (--force)", quote(path_),
                   printable(theirs[0]));
    }
    for (const std::string& c : parsed.comments)  // keep the user's own comments
      if (!is_mapfile_identity_comment(c)) comments_.push_back(c);
    map_ = std::move(parsed.map);
    if (!map_.truncate_to(range_end_))
      throw Error("mapfile " + quote(path_) + " has finished areas past the end of the source range (byte " +
                  std::to_string(range_end_) + "): it is for a larger copy");
  }
  map_.extend_to(range_end_);
  finished_before_ = finished_bytes();

  // The areas to copy, in whole sectors (outward: copying a finished byte again is harmless).
  const auto areas_of = [&](std::initializer_list<RescueStatus> statuses) {
    std::vector<RescueBlock> blocks;
    for (RescueStatus s : statuses) {
      auto more = map_.areas_with(s, range_begin_, range_end_ - range_begin_);
      blocks.insert(blocks.end(), more.begin(), more.end());
    }
    std::sort(blocks.begin(), blocks.end(), [](const auto& a, const auto& b) { return a.pos < b.pos; });
    std::vector<Area> out;
    for (const RescueBlock& b : blocks) {
      const std::uint64_t first = b.pos / sector_size, end = (b.end() + sector_size - 1) / sector_size;
      if (!out.empty() && out.back().sector + out.back().count >= first)  // touching after rounding
        out.back().count = std::max(out.back().count, end - out.back().sector);
      else
        out.push_back({first, end - first});
    }
    return out;
  };
  areas_ = areas_of({RescueStatus::non_tried, RescueStatus::non_trimmed, RescueStatus::non_scraped});
  std::vector<Area> bad = areas_of({RescueStatus::bad_sector});
  std::vector<Area>& bad_to = flags_ & copy_ignore_errors ? areas_ : bad_left_;  // retried, or left
  bad_to.insert(bad_to.end(), bad.begin(), bad.end());
  for (const Area& a : areas_) to_copy_sectors_ += a.count;

  live_ = (1u << plan.dests.size()) - 1;
  total_.read_errors = ErrorRanges(range_capacity);
  for (std::size_t d = 0; d < plan.dests.size(); ++d) {
    total_.write_errors[d] = ErrorRanges(range_capacity);
    total_.verify_errors[d] = ErrorRanges(range_capacity);
  }
}

std::uint64_t MapfileCopy::finished_bytes() const {
  std::uint64_t finished = 0;
  for (const RescueBlock& b : map_.areas_with(RescueStatus::finished, range_begin_, range_end_ - range_begin_))
    finished += b.size;
  return finished;
}

MapfileRecord MapfileCopy::record() const {
  return {path_, existed_, finished_before_, finished_bytes(), sectors_to_bytes(to_copy_sectors_)};
}

void MapfileCopy::start(KcopydClient& client) {
  client_ = &client;
  std::uint64_t bad_bytes = 0;
  for (const Area& a : bad_left_) bad_bytes += sectors_to_bytes(a.count);
  if (existed_ && to_copy_sectors_ == 0 && bad_bytes == 0)
    spdlog::info("mapfile {}: every byte of the range is already copied; nothing to do", quote(path_));
  else if (existed_ && to_copy_sectors_ == 0)
    spdlog::info("mapfile {}: only its bad areas are left ({} bytes); they are read again only with --ignore-errors",
                 quote(path_), bad_bytes);
  else if (existed_) {
    // Whole sectors are copied: a finished byte that shares a sector with an unfinished one is copied again.
    const std::uint64_t range = range_end_ - range_begin_, to_copy = sectors_to_bytes(to_copy_sectors_);
    const std::uint64_t skipped = range - std::min(range, to_copy + bad_bytes);
    const std::string shared = finished_before_ > skipped ? " (" + std::to_string(finished_before_ - skipped) +
                                                                " finished bytes share sectors with unfinished ones)"
                                                          : "";
    if (bad_bytes)
      spdlog::info(
          "mapfile {}: {} of {} bytes already copied{}; copying {} of the other {} bytes (not its {} bytes of bad "
          "areas: --ignore-errors reads them again)",
          quote(path_), skipped, range, shared, to_copy, range - skipped, bad_bytes);
    else
      spdlog::info("mapfile {}: {} of {} bytes already copied{}; copying the other {} bytes", quote(path_), skipped,
                   range, shared, to_copy);
  }
  map_.set_current_status(RescuePhase::copying);
  write_map();  // before any write: a rerun then finds the comments (and a bad FILE fails here)
  queue_next();
}

// One chunk at a time: the next is queued when the last has ended, so that it
// names only the destinations still written (a destination dropped in one chunk
// gets nothing of the next), and a read error ends the copy with its chunk.
void MapfileCopy::queue_next() {
  if (ending_ || next_area_ == areas_.size() || live_ == 0) return;
  const Area& a = areas_[next_area_];
  Chunk chunk{{a.sector + next_offset_, std::min(chunk_sectors_, a.count - next_offset_)}, {}, {}};
  next_offset_ += chunk.area.count;
  if (next_offset_ == a.count) {
    ++next_area_;
    next_offset_ = 0;
  }
  std::vector<IoRegion> dests;
  for (unsigned d = 0; d < plan_.dests.size(); ++d) {
    if (!(live_ & (1u << d))) continue;
    const IoRegion& whole = plan_.dests[d];
    dests.push_back({whole.endpoint, whole.sector + (chunk.area.sector - plan_.from.sector), chunk.area.count});
    chunk.dests.push_back(d);
  }
  chunk.started = std::chrono::steady_clock::now();
  try {
    client_->copy({plan_.from.endpoint, chunk.area.sector, chunk.area.count}, dests, flags_,
                  [this, chunk](const JobResult& r) { chunk_done(chunk, r); });
  } catch (const Error& e) {  // a layout the plan allowed is allowed in part: not expected
    spdlog::error("cannot queue sectors {}+{}: {}", chunk.area.sector, chunk.area.count, e.what());
    ending_ = true;
  }
}

void MapfileCopy::mark(std::uint64_t sector, std::uint64_t count, RescueStatus status) {
  const std::uint64_t begin = std::max(sectors_to_bytes(sector), range_begin_);
  const std::uint64_t end = std::min(sectors_to_bytes(sector + count), range_end_);
  if (begin < end) map_.mark(begin, end - begin, status);
}

// One chunk's job has ended (on the client's loop): its result joins the
// total, its areas are marked, the next chunk is queued.
void MapfileCopy::chunk_done(const Chunk& chunk, const JobResult& r) {
  const Area& a = chunk.area;
  total_.read_err |= r.read_err;
  total_.stopped |= r.stopped;
  add_ranges(total_.read_errors, r.read_errors);
  std::uint64_t held = a.count;  // sectors every destination holds, from the chunk's start (a stopped chunk)
  for (std::size_t j = 0; j < chunk.dests.size(); ++j) {
    const unsigned d = chunk.dests[j];
    total_.sectors_written[d] += r.sectors_written[j];
    add_ranges(total_.write_errors[d], r.write_errors[j]);
    add_ranges(total_.verify_errors[d], r.verify_errors[j]);
    if (r.flush_error[j] && !total_.flush_error[d]) total_.flush_error[d] = r.flush_error[j];
    if (r.write_err & (1ul << j)) total_.write_err |= 1ul << d;
    if (r.dropped & (1ul << j)) live_ &= ~(1u << d);  // the engine's verdict: nothing more is written to it
    held = std::min(held, r.sectors_written[j]);
  }

  // '+': what every destination of the copy holds, flushed. A destination
  // dropped in this chunk or before lacks the rest of the range, so from then
  // on nothing becomes '+': a rerun copies those areas again (to every
  // destination), and never ends "complete" while one lacks them. A chunk cut
  // short by stop() holds the sub-jobs it started: a run from its start.
  const bool every_destination = live_ == (1u << plan_.dests.size()) - 1;
  if (every_destination && !(r.read_err && !(flags_ & copy_ignore_errors))) {
    mark(a.sector, r.stopped ? held : a.count, RescueStatus::finished);
    for (std::size_t j = 0; j < chunk.dests.size(); ++j) {  // what a destination failed to take
      const std::uint64_t shift = plan_.dests[chunk.dests[j]].sector - plan_.from.sector;
      for (const ErrorRanges* errors : {&r.write_errors[j], &r.verify_errors[j]}) {
        for (const ErrorRange& e : errors->ranges()) mark(e.sector - shift, e.count, RescueStatus::non_tried);
        if (errors->overflow_sectors())  // failures past what the list holds: somewhere in the rest
          mark(errors->overflow_from() - shift, a.sector + a.count - (errors->overflow_from() - shift),
               RescueStatus::non_tried);
      }
      if (r.flush_error[j]) mark(a.sector, a.count, RescueStatus::non_tried);
    }
  }
  for (const ErrorRange& e : r.read_errors.ranges()) mark(e.sector, e.count, RescueStatus::bad_sector);
  if (r.read_errors.overflow_sectors())  // bad sectors past what the list holds: the rest is to be read again
    mark(r.read_errors.overflow_from(), a.sector + a.count - r.read_errors.overflow_from(), RescueStatus::non_tried);
  map_.set_current_pos(sectors_to_bytes(a.sector + a.count));

  // A stop, or a read error without copy_ignore_errors, ends the copy as it ends one job.
  if (r.stopped || (r.read_err && !(flags_ & copy_ignore_errors))) ending_ = true;
  // About a quarter of the interval per chunk: the map stays fresh, flushes stay rare.
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - chunk.started;
  if (took > interval_ / 2 && chunk_sectors_ > min_chunk_sectors)
    chunk_sectors_ /= 2;
  else if (took < interval_ / 8 && a.count == chunk_sectors_ && chunk_sectors_ < max_chunk_sectors)
    chunk_sectors_ *= 2;
  if (std::chrono::steady_clock::now() - last_write_ >= interval_) {
    try {
      write_map();
    } catch (const Error& e) {
      spdlog::warn("{} (the copy goes on; trying again later)", e.what());
    }
  }
  queue_next();
}

void MapfileCopy::write_map() {
  last_write_ = std::chrono::steady_clock::now();  // a failure too: it is tried again an interval later
  write_file_atomically(path_, format_mapfile(map_, comments_));
}

JobResult MapfileCopy::finish() {
  total_.sectors_total = to_copy_sectors_;  // what was left to copy (bad areas not retried added below)
  if (finished_bytes() == range_end_ - range_begin_) map_.set_current_status(RescuePhase::finished);
  try {
    write_map();
  } catch (const Error& e) {
    spdlog::error("{}: a rerun with it would not know what this one copied", e.what());
  }
  if (live_ != (1u << plan_.dests.size()) - 1)
    spdlog::info(
        "mapfile {}: what a failed destination lacks stays non-tried; a rerun copies it again to every "
        "destination",
        quote(path_));
  if (!bad_left_.empty()) {
    std::uint64_t sectors = 0;
    for (const Area& a : bad_left_) {
      total_.read_errors.add(a.sector, a.count, EIO);
      sectors += a.count;
    }
    total_.sectors_total += sectors;
    total_.read_err = true;
    spdlog::warn("mapfile {}: {} bad sectors it records were not read again (--ignore-errors retries them)",
                 quote(path_), sectors);
  }
  return total_;
}

}  // namespace kcopy
