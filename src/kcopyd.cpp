#include "kcopy/kcopyd.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "kcopy/error.hpp"
#include "kcopy/sub_job_plan.hpp"

namespace kcopy {

// One queued copy (dm-kcopyd's struct kcopyd_job).
struct KcopydClient::Job {
  IoRegion from;
  std::array<IoRegion, max_destinations> dests{};
  unsigned num_dests = 0;
  unsigned flags = 0;
  NotifyFn notify;
  SubJobPlan plan;
  std::uint64_t next = 0;  // sub-jobs started so far
  unsigned live = 0;       // bit i: destination i is still written
  unsigned in_flight = 0;  // sub-jobs started and not ended
  JobResult result{};

  bool ignore_errors() const { return flags & copy_ignore_errors; }
  // No new sub-job starts once a read failed (unless told to go on), once every
  // destination is dropped, or once the user asked to stop.
  bool stopping(bool stop_requested) const {
    return stop_requested || live == 0 || (result.read_err && !ignore_errors());
  }
};

// One piece of a job in flight: a pool buffer, its read, and one write per
// destination, all from the same buffer (dm-kcopyd's sub-job).
struct KcopydClient::SubJob {
  Job* job = nullptr;
  std::span<std::byte> buffer;
  Extent extent;
  unsigned writes_pending = 0;
  IoRequest read;
  std::array<IoRequest, max_destinations> writes;
};

namespace {

std::uint64_t region_byte(const IoRegion& r) { return sectors_to_bytes(r.sector); }

// The first failure on an endpoint: the sectors the failed request still had to do.
ErrorRange failed_range(const IoRequest& req) {
  const int error = req.result < 0 ? static_cast<int>(-req.result) : EIO;  // 0: unexpected end
  return {bytes_to_sectors(req.offset), bytes_to_sectors(req.buffer.size() + sector_size - 1), error};
}

}  // namespace

KcopydClient::KcopydClient(std::unique_ptr<IoBackend> backend, const ClientConfig& config)
    : backend_(std::move(backend)), io_size_(config.io_size), pool_(config.pages, config.io_size) {
  sub_jobs_.resize(pool_.capacity());
  for (auto& sj : sub_jobs_) free_sub_jobs_.push_back(&sj);
  batch_.reserve(max_destinations * sub_jobs_.size());
  completions_.resize((1 + max_destinations) * sub_jobs_.size());
  io_thread_ = std::thread([this] { run(); });
}

KcopydClient::~KcopydClient() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  queued_.notify_one();
  io_thread_.join();
}

void KcopydClient::copy(const IoRegion& from, std::span<const IoRegion> dests, unsigned flags, NotifyFn notify) {
  if (dests.empty() || dests.size() > max_destinations)
    throw Error("a copy needs 1 to " + std::to_string(max_destinations) + " destinations");
  std::uint32_t alignment = backend_->alignment(from.endpoint);
  for (const auto& d : dests) {
    if (d.count != from.count) throw Error("a destination's count differs from the source's");
    alignment = std::max(alignment, backend_->alignment(d.endpoint));
  }
  auto job = std::make_unique<Job>(Job{
      .from = from,
      .num_dests = static_cast<unsigned>(dests.size()),
      .flags = flags,
      .notify = std::move(notify),
      .plan = SubJobPlan(region_byte(from), sectors_to_bytes(from.count), io_size_, alignment),
  });
  std::copy(dests.begin(), dests.end(), job->dests.begin());
  job->live = (1u << dests.size()) - 1;
  job->result.sectors_total = from.count;
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
      queued_.wait(lock, [this] { return closing_ || !jobs_.empty(); });
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
    sj.extent = job.plan.at(job.next++);
    sj.buffer = pool_.get().first(sj.extent.length);
    sj.read = {IoOp::read, job.from.endpoint, sj.buffer, region_byte(job.from) + sj.extent.offset, 0, &sj};
    ++job.in_flight;
    batch_.push_back(&sj.read);
  }
  if (!batch_.empty()) backend_->submit(batch_);
}

void KcopydClient::on_complete(IoRequest& req) {
  SubJob& sj = *static_cast<SubJob*>(req.owner);
  Job& job = *sj.job;
  const auto done = static_cast<std::size_t>(std::max(req.result, 0L));
  if (req.result > 0 && done < req.buffer.size()) {
    // A short transfer is not an error: continue where it stopped.
    req.offset += done;
    req.buffer = req.buffer.subspan(done);
    IoRequest* again = &req;
    backend_->submit(std::span(&again, 1));
    return;
  }
  const bool failed = req.result <= 0 && !req.buffer.empty();
  if (req.op == IoOp::read) {
    if (failed) {
      if (!job.result.read_err) job.result.read_error = failed_range(req);
      job.result.read_err = true;
      if (!job.ignore_errors()) return end_sub_job(sj);
      // DM_KCOPYD_IGNORE_ERROR: what could not be read is written as zeroes.
      std::memset(req.buffer.data(), 0, req.buffer.size());
    }
    return on_read_done(sj);
  }
  const auto dest = static_cast<unsigned>(&req - sj.writes.data());
  if (failed) {
    const unsigned long bit = 1ul << dest;
    if (!(job.result.write_err & bit)) job.result.write_error[dest] = failed_range(req);
    job.result.write_err |= bit;
    if (!job.ignore_errors()) job.live &= ~(1u << dest);  // nothing more is written to it
  } else {
    job.result.sectors_written[dest] += bytes_to_sectors(sj.extent.length);
  }
  if (--sj.writes_pending == 0) end_sub_job(sj);
}

// Fans the buffer out to every live destination, all writes in one submit.
void KcopydClient::on_read_done(SubJob& sj) {
  Job& job = *sj.job;
  batch_.clear();
  for (unsigned d = 0; d < job.num_dests; ++d) {
    if (!(job.live & (1u << d))) continue;
    sj.writes[d] = {IoOp::write, job.dests[d].endpoint, sj.buffer, region_byte(job.dests[d]) + sj.extent.offset, 0,
                    &sj};
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
  free_sub_jobs_.push_back(&sj);
  --job.in_flight;
}

// Flushes every destination that has not failed, then tells the caller.
void KcopydClient::finish(Job& job) {
  JobResult& result = job.result;
  result.stopped = job.next < job.plan.count() && stop_requested_.load(std::memory_order_relaxed);
  if (!(job.flags & copy_no_flush)) {
    for (unsigned d = 0; d < job.num_dests; ++d) {
      if (result.write_err & (1ul << d)) continue;
      if (const int rc = backend_->flush(job.dests[d].endpoint); rc < 0) {
        result.flush_error[d] = -rc;
        result.write_err |= 1ul << d;
      }
    }
  }
  if (job.notify) job.notify(result);
}

}  // namespace kcopy
