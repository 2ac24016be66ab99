#include "kcopy/kcopyd.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "kcopy/error.hpp"
#include "kcopy/sub_job_plan.hpp"

namespace kcopy {
namespace {

// Disjoint failed ranges a job keeps per endpoint (sectors past them are only
// counted); adjacent ranges merge as they arrive, so one bad area takes one.
constexpr std::size_t listed_ranges = 65536;

std::uint64_t region_byte(const IoRegion& r) { return sectors_to_bytes(r.sector); }

bool overlaps(std::uint64_t a, std::uint64_t a_len, std::uint64_t b, std::uint64_t b_len) {
  return a_len > 0 && b_len > 0 && a < b + b_len && b < a + a_len;
}

// Slot 0 of a sub-job is its read; slot 1 + d its write to destination d.
constexpr unsigned read_slot = 0;
constexpr unsigned write_slot(unsigned dest) { return 1 + dest; }

}  // namespace

// One queued copy (dm-kcopyd's struct kcopyd_job).
struct KcopydClient::Job {
  IoRegion from;
  std::array<IoRegion, max_destinations> dests{};
  unsigned num_dests = 0;
  unsigned flags = 0;
  NotifyFn notify;
  SubJobPlan plan;
  bool descending = false;                                // memmove order: the destination is above the source
  unsigned gated = 0;                                     // bit d: destination d overlaps the source on its medium
  std::uint64_t from_at = 0;                              // bytes: the source's start on its medium
  std::array<std::uint64_t, max_destinations> dest_at{};  // bytes: each destination's start on its medium
  std::uint64_t next = 0;                                 // sub-jobs started so far, in the job's order
  unsigned live = 0;                                      // bit d: destination d is still written
  unsigned in_flight = 0;                                 // sub-jobs started and not ended
  unsigned read_scans = 0;                                // failed reads being scanned again
  JobResult result{};

  bool ignore_errors() const { return flags & copy_ignore_errors; }
  // No new sub-job starts once a read failed (unless told to go on; and while a
  // failed read is being scanned, in case it fails for good), once every
  // destination is dropped, or once the user asked to stop.
  bool stopping(bool stop_requested) const {
    return stop_requested || live == 0 || ((result.read_err || read_scans > 0) && !ignore_errors());
  }
  // Records a failed request (result -errno, or 0: an unexpected end) against
  // the endpoint of its slot: the source's read_err, or destination d's bit.
  void record_failure(const IoRequest& req) {
    const int error = req.result < 0 ? static_cast<int>(-req.result) : EIO;
    const std::uint64_t sector = bytes_to_sectors(req.offset);
    const std::uint64_t count = bytes_to_sectors(req.buffer.size() + sector_size - 1);
    if (req.tag == read_slot) {
      result.read_errors.add(sector, count, error);
      result.read_err = true;
    } else {
      result.write_errors[req.tag - 1].add(sector, count, error);
      result.write_err |= 1ul << (req.tag - 1);
    }
  }
  // The sub-job at `position` in the order the job runs them.
  Extent at(std::uint64_t position) const { return plan.at(descending ? plan.count() - 1 - position : position); }
};

// One piece of a job in flight: a pool buffer, its read, and one write per
// destination, all from the same buffer (dm-kcopyd's sub-job).
struct KcopydClient::SubJob {
  // A failed request scanned again in pieces, one piece in flight (see scan_next).
  struct Scan {
    std::span<std::byte> buffer;  // what the failed request still had to do
    std::uint64_t offset = 0;     // bytes, on the endpoint, of buffer[0]
    std::uint64_t next = 0;       // bytes of buffer done so far
    std::uint64_t failed = 0;     // bytes that failed as single logical blocks
    std::uint64_t block = 0;      // the endpoint's logical block size
    std::uint64_t chunk = 0;      // size of the next piece
    std::uint64_t max_chunk = 0;
  };

  Job* job = nullptr;  // null while free
  std::span<std::byte> buffer;
  Extent extent;
  std::uint64_t position = 0;  // in the job's order
  bool reading = false;
  unsigned writes_pending = 0;
  IoRequest read;
  std::array<IoRequest, max_destinations> writes;
  std::array<Scan, 1 + max_destinations> scan;             // by slot
  std::array<IoRequest, 1 + max_destinations> scan_piece;  // the piece in flight, by slot
};

// A sub-job has one request in flight while it reads (its read, or a piece of
// its scan), then one per destination (a write, or a piece of that write's scan).
std::size_t KcopydClient::max_requests(const ClientConfig& config, unsigned destinations) {
  return PagePool::capacity_for(config.pages, config.io_size) * std::max(destinations, 1u);
}

KcopydClient::KcopydClient(std::unique_ptr<IoBackend> backend, const ClientConfig& config)
    : backend_(std::move(backend)),
      io_size_(config.io_size),
      threaded_(config.io_thread),
      pool_(config.pages, config.io_size) {
  backend_->register_buffers(pool_.memory());
  sub_jobs_.resize(pool_.capacity());
  for (auto& sj : sub_jobs_) free_sub_jobs_.push_back(&sj);
  batch_.reserve(max_destinations * sub_jobs_.size());
  completions_.resize(max_requests(config, max_destinations));
  held_.reserve(sub_jobs_.size());
  if (threaded_) io_thread_ = std::thread([this] { run(); });
}

KcopydClient::~KcopydClient() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  queued_.notify_one();
  if (threaded_)
    io_thread_.join();
  else
    wait();
}

void KcopydClient::wait() {
  if (!threaded_) run();
}

void KcopydClient::copy(const IoRegion& from, std::span<const IoRegion> dests, unsigned flags, NotifyFn notify) {
  if (dests.empty() || dests.size() > max_destinations)
    throw Error("a copy needs 1 to " + std::to_string(max_destinations) + " destinations");
  std::uint32_t alignment = backend_->alignment(from.endpoint);
  // Overlap is judged on the medium: a loop device and its backing file are one.
  const Placement source = backend_->placement(from.endpoint);
  const std::uint64_t from_at = source.offset + region_byte(from);
  std::array<std::uint64_t, max_destinations> dest_at{};
  bool up = false, down = false;  // destinations overlapping the source from above, from below
  unsigned gated = 0;
  for (unsigned d = 0; d < dests.size(); ++d) {
    const IoRegion& r = dests[d];
    if (r.count != from.count) throw Error("a destination's count differs from the source's");
    alignment = std::max(alignment, backend_->alignment(r.endpoint));
    const Placement p = backend_->placement(r.endpoint);
    dest_at[d] = p.offset + region_byte(r);
    const std::uint64_t bytes = sectors_to_bytes(r.count);
    if (p.medium == source.medium && overlaps(dest_at[d], bytes, from_at, bytes)) {
      if (dest_at[d] == from_at) throw Error("a destination is the source range itself");
      (dest_at[d] > from_at ? up : down) = true;
      gated |= 1u << d;
    }
  }
  if (up && down)
    throw Error("two destinations overlap the source from opposite sides: no copy order keeps the source intact");

  auto job = std::make_unique<Job>(Job{
      .from = from,
      .num_dests = static_cast<unsigned>(dests.size()),
      .flags = flags,
      .notify = std::move(notify),
      .plan = SubJobPlan(region_byte(from), sectors_to_bytes(from.count), io_size_, alignment),
      .descending = up,
      .gated = gated,
      .from_at = from_at,
      .dest_at = dest_at,
  });
  std::copy(dests.begin(), dests.end(), job->dests.begin());
  job->live = (1u << dests.size()) - 1;
  JobResult& result = job->result;
  result.sectors_total = from.count;
  result.read_errors = ErrorRanges(listed_ranges);
  for (unsigned d = 0; d < dests.size(); ++d) result.write_errors[d] = ErrorRanges(listed_ranges);
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  queued_.notify_one();
}

void KcopydClient::run() {
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock lock(mutex_);
      // Without an I/O thread, run() is wait(): it returns once the queue is empty.
      if (threaded_) queued_.wait(lock, [this] { return closing_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    run_job(*job);
  }
}

// The I/O loop: keep the pool busy with reads, turn each completed read into
// writes, until nothing is left to start and nothing is in flight.
void KcopydClient::run_job(Job& job) {
  for (;;) {
    start_sub_jobs(job);
    if (!held_.empty()) drop_stranded_writes(job);
    if (job.in_flight == 0) break;
    const std::size_t n = backend_->reap(completions_, 1);
    for (std::size_t i = 0; i < n; ++i) on_complete(*completions_[i]);
  }
  finish(job);
}

// Starts as many sub-jobs as there are free buffers, all reads in one submit.
void KcopydClient::start_sub_jobs(Job& job) {
  batch_.clear();
  while (job.next < job.plan.count() && !free_sub_jobs_.empty() &&
         !job.stopping(stop_requested_.load(std::memory_order_relaxed))) {
    SubJob& sj = *free_sub_jobs_.back();
    free_sub_jobs_.pop_back();
    sj.job = &job;
    sj.position = job.next++;
    sj.extent = job.at(sj.position);
    sj.buffer = pool_.get().first(sj.extent.length);
    sj.reading = true;
    sj.read = {IoOp::read, job.from.endpoint, sj.buffer, region_byte(job.from) + sj.extent.offset, 0, &sj, read_slot};
    ++job.in_flight;
    batch_.push_back(&sj.read);
  }
  if (!batch_.empty()) backend_->submit(batch_);
}

void KcopydClient::on_complete(IoRequest& req) {
  SubJob& sj = *static_cast<SubJob*>(req.owner);
  const auto done = static_cast<std::size_t>(std::max(req.result, 0L));
  if (req.result > 0 && done < req.buffer.size()) {
    // A short transfer is not an error: continue where it stopped.
    req.offset += done;
    req.buffer = req.buffer.subspan(done);
    IoRequest* again = &req;
    backend_->submit(std::span(&again, 1));
    return;
  }
  if (&req == &sj.scan_piece[req.tag]) return on_scan_piece_done(sj, req);
  if (req.result <= 0 && !req.buffer.empty()) return on_failure(sj, req);
  slot_done(sj, req.tag);
}

// A sub-job's read or write failed (result -errno, or 0: an unexpected end).
void KcopydClient::on_failure(SubJob& sj, IoRequest& req) {
  Job& job = *sj.job;
  // A failed read is scanned again to find exactly which blocks fail (the block
  // layer may have merged it with a neighbour; a transient error heals). With
  // DM_KCOPYD_IGNORE_ERROR a failed write is scanned too, so that only the
  // blocks that really fail are lost.
  if (req.tag == read_slot || job.ignore_errors()) return start_scan(sj, req);
  job.record_failure(req);
  job.live &= ~(1u << (req.tag - 1));  // nothing more is written to it
  if (--sj.writes_pending == 0) end_sub_job(sj);
}

// The scan goes through the failed range with one piece in flight, so that no
// two of its pieces can be merged into one request again. A piece that works
// doubles the next one (up to a sixteenth of the range); one that fails is tried
// again an eighth as large, down to one logical block, which is then recorded as
// bad. A range with a few bad blocks costs a few dozen requests, not one per block.
void KcopydClient::start_scan(SubJob& sj, IoRequest& failed) {
  const std::uint64_t block = std::max<std::uint64_t>(backend_->alignment(failed.endpoint), sector_size);
  const std::uint64_t max_chunk = std::max(block, failed.buffer.size() / 16 / block * block);
  sj.scan[failed.tag] = {failed.buffer, failed.offset, 0, 0, block, max_chunk, max_chunk};
  if (failed.tag == read_slot) ++sj.job->read_scans;
  scan_next(sj, failed.tag);
}

void KcopydClient::scan_next(SubJob& sj, unsigned slot) {
  SubJob::Scan& scan = sj.scan[slot];
  if (scan.next == scan.buffer.size()) return scan_done(sj, slot);
  const IoRequest& failed = slot == read_slot ? sj.read : sj.writes[slot - 1];
  // The piece ends on a logical-block boundary, at least one block on.
  const std::uint64_t at = scan.offset + scan.next;
  const std::uint64_t end_of_range = scan.offset + scan.buffer.size();
  std::uint64_t end = (at + scan.chunk) / scan.block * scan.block;
  if (end <= at) end = (at / scan.block + 1) * scan.block;
  end = std::min(end, end_of_range);
  IoRequest& piece = sj.scan_piece[slot];
  piece = {failed.op, failed.endpoint, scan.buffer.subspan(scan.next, end - at), at, 0, &sj, slot};
  IoRequest* p = &piece;
  backend_->submit(std::span(&p, 1));
}

void KcopydClient::on_scan_piece_done(SubJob& sj, IoRequest& piece) {
  Job& job = *sj.job;
  const unsigned slot = piece.tag;
  SubJob::Scan& scan = sj.scan[slot];
  const std::uint64_t len = piece.buffer.size();
  if (piece.result > 0 || len == 0) {
    scan.next += len;
    scan.chunk = std::min(scan.chunk * 2, scan.max_chunk);
  } else if (len > scan.block) {
    scan.chunk = std::max(scan.block, len / 8 / scan.block * scan.block);
  } else {
    job.record_failure(piece);
    if (slot == read_slot) std::memset(piece.buffer.data(), 0, len);  // written as zeroes, as kcopyd does
    scan.failed += len;
    scan.next += len;
  }
  scan_next(sj, slot);
}

// A scan has been through its whole range. A read that still failed somewhere
// and may not go on ends its sub-job unwritten (the copy stops).
void KcopydClient::scan_done(SubJob& sj, unsigned slot) {
  Job& job = *sj.job;
  if (slot == read_slot) --job.read_scans;
  if (slot == read_slot && sj.scan[slot].failed > 0 && !job.ignore_errors()) {
    sj.reading = false;
    end_sub_job(sj);
    return release_held_writes(job);
  }
  slot_done(sj, slot);
}

// A slot's request has completed, directly or through retries.
void KcopydClient::slot_done(SubJob& sj, unsigned slot) {
  Job& job = *sj.job;
  if (slot == read_slot) return on_read_done(sj);
  job.result.sectors_written[slot - 1] += bytes_to_sectors(sj.extent.length - sj.scan[slot].failed);
  sj.scan[slot].failed = 0;
  if (--sj.writes_pending == 0) end_sub_job(sj);
}

void KcopydClient::on_read_done(SubJob& sj) {
  Job& job = *sj.job;
  sj.reading = false;
  sj.scan[read_slot].failed = 0;
  if (!job.gated) return start_writes(sj);
  held_.push_back(&sj);
  release_held_writes(job);
}

// memmove safety: starts the writes of held sub-jobs that no longer cover any
// source byte still unread. "Unread" is everything from the first sub-job (in
// the job's order) whose read has not completed: a conservative frontier that
// costs one pass over the few sub-jobs in flight.
void KcopydClient::release_held_writes(Job& job) {
  if (held_.empty()) return;
  std::uint64_t frontier = job.next;
  for (const SubJob& s : sub_jobs_)
    if (s.job == &job && s.reading) frontier = std::min(frontier, s.position);
  std::uint64_t unread_begin = 0, unread_len = 0;  // bytes from the start of the job
  if (frontier < job.plan.count()) {
    const Extent e = job.at(frontier);
    unread_begin = job.descending ? 0 : e.offset;
    unread_len = job.descending ? e.offset + e.length : sectors_to_bytes(job.from.count) - e.offset;
  }
  const std::uint64_t unread_at = job.from_at + unread_begin;
  for (std::size_t i = 0; i < held_.size();) {
    SubJob& sj = *held_[i];
    bool blocked = false;
    for (unsigned d = 0; d < job.num_dests && !blocked; ++d)
      blocked = (job.gated & (1u << d)) &&
                overlaps(job.dest_at[d] + sj.extent.offset, sj.extent.length, unread_at, unread_len);
    if (blocked) {
      ++i;
      continue;
    }
    held_[i] = held_.back();
    held_.pop_back();
    start_writes(sj);
  }
}

// A stopped job starts no more reads, so a held write that waits for source
// sectors nobody will read never goes: once no read is left in flight, the held
// sub-jobs end unwritten (writing them would destroy source data not yet copied).
void KcopydClient::drop_stranded_writes(Job& job) {
  if (!job.stopping(stop_requested_.load(std::memory_order_relaxed))) return;
  if (std::any_of(sub_jobs_.begin(), sub_jobs_.end(), [&](const SubJob& s) { return s.job == &job && s.reading; }))
    return;
  for (SubJob* sj : held_) end_sub_job(*sj);
  held_.clear();
}

// Fans the buffer out to every live destination, all writes in one submit.
void KcopydClient::start_writes(SubJob& sj) {
  Job& job = *sj.job;
  batch_.clear();
  for (unsigned d = 0; d < job.num_dests; ++d) {
    if (!(job.live & (1u << d))) continue;
    sj.writes[d] = {IoOp::write, job.dests[d].endpoint, sj.buffer, region_byte(job.dests[d]) + sj.extent.offset, 0,
                    &sj,         write_slot(d)};
    batch_.push_back(&sj.writes[d]);
  }
  sj.writes_pending = static_cast<unsigned>(batch_.size());
  if (batch_.empty()) return end_sub_job(sj);
  backend_->submit(batch_);
}

void KcopydClient::end_sub_job(SubJob& sj) {
  Job& job = *sj.job;
  sectors_done_.fetch_add(bytes_to_sectors(sj.extent.length), std::memory_order_relaxed);
  pool_.put(sj.buffer);
  sj.job = nullptr;
  free_sub_jobs_.push_back(&sj);
  --job.in_flight;
}

// Flushes every destination that has not failed, then tells the caller.
void KcopydClient::finish(Job& job) {
  JobResult& result = job.result;
  result.stopped = job.next < job.plan.count() && stop_requested_.load(std::memory_order_relaxed);
  if (!(job.flags & copy_no_flush)) {
    for (unsigned d = 0; d < job.num_dests; ++d) {
      if (!(job.live & (1u << d))) continue;
      if (const int rc = backend_->flush(job.dests[d].endpoint); rc < 0) {
        result.flush_error[d] = -rc;
        result.write_err |= 1ul << d;
      }
    }
  }
  if (job.notify) job.notify(result);
}

}  // namespace kcopy
