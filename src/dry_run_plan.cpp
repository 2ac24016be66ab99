#include "kcopy/dry_run_plan.hpp"

#include "kcopy/progress_line.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/units.hpp"

namespace kcopy {
namespace {

constexpr std::size_t label_width = 15;

std::string label(std::string text) {
  text.resize(std::max(text.size() + 1, label_width), ' ');
  return text;
}

std::string range(const RegionRecord& r) {
  const std::uint64_t sector = r.sector.value_or(0), count = r.count.value_or(0);
  const std::uint64_t bytes = sectors_to_bytes(count);
  return "sectors " + std::to_string(sector) + "-" + std::to_string(sector + count - 1) + " (" + std::to_string(count) +
         (count == 1 ? " sector, " : " sectors, ") + std::to_string(bytes) + " bytes = " + format_bytes(bytes) + ")";
}

// The device line: what it is, its size, its block size, how it is opened.
std::string device(const RegionRecord& r, bool is_source) {
  std::string out;
  if (r.nbd_connections)
    out = "NBD export of " + std::to_string(r.size_bytes) + " bytes, " + std::to_string(r.nbd_connections) +
          (r.nbd_connections == 1 ? " connection" : " connections");
  else if (r.is_block)
    out = "block device of " + std::to_string(bytes_to_sectors(r.size_bytes)) + " sectors";
  else if (r.would_create)
    out = "regular file, would be created" +
          (r.symlink_target.empty() ? "" : " as " + quote(r.symlink_target) + " (where the symlink leads)") + " with " +
          std::to_string(r.grows_to.value_or(0)) + " bytes";
  else if (r.grows_to)
    out = "regular file of " + std::to_string(r.size_bytes) + " bytes, would grow to " + std::to_string(*r.grows_to) +
          " bytes";
  else
    out = "regular file of " + std::to_string(r.size_bytes) + " bytes";
  out += ", logical block " + std::to_string(r.logical_block_size) + " bytes";
  if (!r.nbd_connections) out += r.direct ? ", O_DIRECT" : ", buffered";
  if (!r.written)
    out += ", read-only";
  else if (r.is_block)
    out += r.exclusive ? ", O_EXCL: not in use" : ", not checked for use (--force)";
  if (is_source && r.written) out += ", also a destination (read-write)";
  return out;
}

}  // namespace

std::string dry_run_plan(const RunRecord& run) {
  std::string out = "kcopy dry run: every check passed; nothing was written or created\n";
  const std::string indent(label_width, ' ');
  for (std::size_t i = 0; i < run.regions.size(); ++i) {
    const RegionRecord& r = run.regions[i];
    out += label(r.role) + quote(r.path.value_or(r.argument)) + ": " + range(r) + "\n";
    out += indent + device(r, i == 0) + "\n";
  }
  if (run.engine) {
    const EngineRecord& e = *run.engine;
    out += label("I/O engine") + e.engine + " (" + e.reason + ")\n";
    out += label("sub-jobs") + std::to_string(e.sub_jobs) + " of " + format_bytes(e.io_size) + ", at most " +
           std::to_string(e.in_flight) + " in flight (page pool: " + std::to_string(e.pool_pages) +
           " pages = " + format_bytes(e.pool_pages * page_size) + ")\n";
    std::string order = e.descending ? "descending" : "ascending";
    if (e.overlapping) {
      std::string which;
      for (std::size_t d = 0; d + 1 < run.regions.size(); ++d)
        if (e.overlapping & (1u << d)) which += (which.empty() ? "" : ", ") + std::to_string(d + 1);
      order += ", as memmove: destination " + which + " overlaps the source from " +
               (e.descending ? "above" : "below") + "; writes wait until the source sectors they cover have been read";
    }
    out += label("order") + order + "\n";
  }
  if (const auto& m = run.mapfile)
    out += label("mapfile") + quote(m->path) +
           (m->existed ? ": " + std::to_string(m->finished_bytes_before) + " bytes finished, " +
                             std::to_string(m->bytes_to_copy) + " to copy"
                       : ": new, would be created") +
           "\n";
  return out;
}

}  // namespace kcopy
