#include "kcopy/kcopyd.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "kcopy/error.hpp"
#include "kcopy/overlap.hpp"
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

// The sub-jobs of one job in one stage, in the order they entered it (a stage
// is a list, as dm-kcopyd keeps its jobs, so that a completion touches only
// the sub-jobs it concerns); and the jobs that may start sub-jobs, or must be
// looked at after a completion. Intrusive (an element's links are its own
// list_prev[L] and list_next[L]; it is in one list of kind L at a time):
// moving an element between lists allocates nothing.
template <typename T, std::size_t L = 0>  // L: which of T's links (T::list_prev[L], T::list_next[L])
struct IntrusiveList {
  T* head = nullptr;
  T* tail = nullptr;
  bool empty() const { return head == nullptr; }
  bool contains(const T& t) const { return t.list_prev[L] || head == &t; }
  void push_back(T& t) {
    t.list_prev[L] = tail;
    t.list_next[L] = nullptr;
    (tail ? tail->list_next[L] : head) = &t;
    tail = &t;
  }
  void erase(T& t) {
    (t.list_prev[L] ? t.list_prev[L]->list_next[L] : head) = t.list_next[L];
    (t.list_next[L] ? t.list_next[L]->list_prev[L] : tail) = t.list_prev[L];
    t.list_prev[L] = t.list_next[L] = nullptr;
  }
  T* pop_front() {
    T* t = head;
    if (t) erase(*t);
    return t;
  }
};

}  // namespace

// One queued copy (dm-kcopyd's struct kcopyd_job).
struct KcopydClient::Job {
  bool zeroing = false;  // dm_kcopyd_zero: no source; every sub-job writes zeroes
  IoRegion from;         // the source (zeroing: unused, its count is the job's)
  std::array<IoRegion, max_destinations> dests{};
  unsigned num_dests = 0;
  unsigned flags = 0;
  NotifyFn notify;
  SubJobPlan plan;
  OverlapOrder order;                                     // memmove: descending, and which destinations wait
  std::uint64_t from_at = 0;                              // bytes: the source's start on its medium
  std::array<std::uint64_t, max_destinations> dest_at{};  // bytes: each destination's start on its medium
  std::uint64_t next = 0;                                 // sub-jobs started so far, in the job's order
  std::uint64_t next_write = 0;                           // write_seq: the sub-job whose writes go next
  unsigned live = 0;                                      // bit d: destination d is still written
  unsigned active = 0;                                    // sub-jobs started and not ended
  unsigned read_scans = 0;                                // failed reads being scanned
  IntrusiveList<SubJob> reading{};                        // sub-jobs whose read is in flight, in the job's order
  IntrusiveList<SubJob> held{};                           // read, waiting to write (memmove, write_seq)
  JobResult result{};
  std::array<Job*, 2> list_prev{}, list_next{};      // in JobLists::starting (0) and touched (1)
  std::list<std::unique_ptr<Job>>::iterator self{};  // in active_

  bool ignore_errors() const { return flags & copy_ignore_errors; }
  bool write_seq() const { return flags & copy_write_seq; }
  bool verify() const { return flags & copy_verify; }
  bool sparse() const { return flags & copy_sparse; }
  bool all_started() const { return next == plan.count(); }
  // No new sub-job will start: the user asked to stop, every destination was
  // dropped, or a read failed for good (unless told to go on).
  bool ended_early(bool stop_requested) const {
    return stop_requested || live == 0 || (result.read_err && !ignore_errors());
  }
  // New sub-jobs wait while a failed read is scanned, in case it fails for good.
  bool may_start(bool stop_requested) const {
    return !all_started() && !ended_early(stop_requested) && (read_scans == 0 || ignore_errors());
  }
  // The job is finished when no sub-job will start any more and none is active.
  bool finished(bool stop_requested) const { return (all_started() || ended_early(stop_requested)) && active == 0; }
  // The sub-job at `position` in the order the job runs them.
  Extent at(std::uint64_t position) const { return plan.at(order.descending ? plan.count() - 1 - position : position); }
};

// The jobs the I/O loop looks at, so that a queued job that has not started,
// or a running one with nothing to do, costs nothing per completion.
struct KcopydClient::JobLists {
  IntrusiveList<Job> starting;    // may start sub-jobs, in the order queued
  IntrusiveList<Job, 1> touched;  // to look at: may have finished

  void touch(Job& job) {
    if (!touched.contains(job)) touched.push_back(job);
  }
};

// One transfer of a sub-job: its read, or its write to one destination. Its
// request is in flight whole, then (after a short completion) its rest, or, once
// it has failed, as one piece at a time of a scan down to single blocks.
struct KcopydClient::Transfer {
  // read: the source; write, punch (sparse zeroes), zero (a zero job): to a
  // destination, one segment of the sub-job at a time; verify: a destination read back.
  enum class Kind : std::uint8_t { read, write, punch, zero, verify };
  // A failed transfer gone through again in pieces, one piece in flight, so that
  // no two of its pieces can be merged into one request again. A piece that
  // works doubles the next one (up to a sixteenth of the transfer); one that
  // fails is tried again an eighth as large, down to one logical block, which is
  // then recorded as bad. A few bad blocks cost a few dozen requests.
  struct Scan {
    std::uint64_t block = 0;      // the endpoint's logical block size
    std::uint64_t chunk = 0;      // size of the next piece
    std::uint64_t max_chunk = 0;  //
    std::uint64_t piece_end = 0;  // bytes into the transfer where the piece in flight ends
  };

  Kind kind = Kind::read;
  unsigned dest = 0;  // for writes
  SubJob* sub_job = nullptr;
  unsigned endpoint = 0;
  std::span<std::byte> buffer;  // the whole transfer
  std::uint64_t offset = 0;     // bytes, on the endpoint, of buffer[0]
  IoRequest io;                 // in flight: the transfer, its rest, or a scan piece
  std::uint64_t next = 0;       // bytes of the transfer done: the request in flight starts here
  bool scanning = false;
  Scan scan;
  std::uint64_t failed = 0;  // bytes that failed as single blocks

  // Where the request in flight ends: the transfer's end, or its scan piece's.
  std::uint64_t end() const { return scanning ? scan.piece_end : buffer.size(); }
  unsigned segment = 0;  // writes: which of the sub-job's segments is in flight

  bool is_write() const { return kind == Kind::write || kind == Kind::punch || kind == Kind::zero; }
  IoRequest request(std::uint64_t from, std::uint64_t to) {
    const std::span<std::byte> piece = buffer.subspan(from, to - from);
    switch (kind) {
      case Kind::write:
        return IoRequest::make_write(endpoint, piece, offset + from, this);
      case Kind::punch:
        return IoRequest::make_punch(endpoint, piece, offset + from, this);
      case Kind::zero:
        return IoRequest::make_zero(endpoint, piece, offset + from, this);
      case Kind::read:
      case Kind::verify:
        break;
    }
    return IoRequest::make_read(endpoint, piece, offset + from, this);
  }
  // Starts the transfer over `buf`, at byte `at` of endpoint `ep`.
  void start(Kind k, unsigned d, SubJob& sj, unsigned ep, std::span<std::byte> buf, std::uint64_t at) {
    dest = d;
    sub_job = &sj;
    endpoint = ep;
    failed = 0;
    segment = 0;
    continue_with(k, buf, at);
  }
  // A write's next segment: the failed bytes and the segment count go on.
  void continue_with(Kind k, std::span<std::byte> buf, std::uint64_t at) {
    kind = k;
    buffer = buf;
    offset = at;
    next = 0;
    scanning = false;
    io = request(0, buf.size());
  }
};

// One piece of a job in flight: a pool buffer, its read, and one write per
// destination, all from the same buffer (dm-kcopyd's sub-job). Its stage is
// the one field that says where it is; the transitions are, in order:
//   free -> reading           start_sub_jobs: a buffer and a read
//   reading -> held           read_done, when a destination overlaps the source,
//                             or writes go in sequence (write_seq)
//   reading/held -> writing   start_writes: one write per live destination
//   writing -> verifying      verify_next, with copy_verify, when its last write is done
//   writing/verifying -> free end_sub_job, when its last write (or read-back) is done
//   reading/held -> free      end_sub_job, unwritten: a read that failed for good,
//                             or writes stranded by a stop (drop_stranded_writes)
struct KcopydClient::SubJob {
  enum class Stage : std::uint8_t {
    free,       // in the pool
    reading,    // its read, or a scan of it, is in flight
    held,       // read; its writes wait until the source they overwrite is read (memmove),
                // or, with write_seq, until every earlier sub-job's writes have started
    writing,    // writes, or scans of them, in flight to every live destination
    verifying,  // copy_verify: destinations read back one at a time into `check`
  };
  Stage stage = Stage::free;
  Job* job = nullptr;
  std::array<SubJob*, 1> list_prev{}, list_next{};  // in job->reading or job->held
  std::span<std::byte> buffer;
  Extent extent;
  std::uint64_t position = 0;  // in the job's order
  unsigned writes_pending = 0;
  unsigned written = 0;        // bit d: written to destination d without a failed block
  std::span<std::byte> check;  // copy_verify: the read-back buffer
  bool pooled = true;          // buffer is the pool's (a zero job's is the shared zeroes)
  // What each destination gets, in order: runs of data, or (copy_sparse, zero
  // jobs) of zeroes. Room for every run is reserved up front.
  struct Segment {
    std::uint64_t offset = 0, length = 0;  // bytes into the sub-job
    Transfer::Kind kind = Transfer::Kind::write;
  };
  std::vector<Segment> segments;
  Transfer read;
  std::array<Transfer, max_destinations> writes;
  Transfer verify;

  // Every stage change goes through here: a reading or held sub-job is in its job's list of that stage.
  void set_stage(Stage to) {
    if (stage == Stage::reading) job->reading.erase(*this);
    if (stage == Stage::held) job->held.erase(*this);
    stage = to;
    if (to == Stage::reading) job->reading.push_back(*this);
    if (to == Stage::held) job->held.push_back(*this);
  }
};

// A sub-job has one request in flight while it reads (its read, or a piece of
// its scan), then one per destination (a write, or a piece of that write's scan).
std::size_t KcopydClient::sub_jobs_for(const ClientConfig& config) {
  const std::size_t large = PagePool::capacity_for(config.pages, config.io_size);
  const std::size_t small = PagePool::capacity_for(config.pages, small_sub_job_bytes);
  return std::clamp<std::size_t>(std::max(large, small), 1, max_sub_jobs_in_flight);
}

std::size_t KcopydClient::max_requests(const ClientConfig& config, unsigned destinations) {
  return sub_jobs_for(config) * std::max(destinations, 1u);
}

KcopydClient::KcopydClient(std::unique_ptr<IoBackend> backend, const ClientConfig& config)
    : backend_(std::move(backend)),
      io_size_(config.io_size),
      threaded_(config.io_thread),
      list_error_ranges_(config.list_error_ranges),
      pool_(config.pages) {
  if (io_size_ == 0 || io_size_ % sector_size != 0)
    throw Error("the sub-job size (" + std::to_string(io_size_) + " bytes) is not a whole number of 512-byte sectors");
  if (io_size_ > pool_.memory().size())
    throw Error("the sub-job size (" + std::to_string(io_size_) + " bytes) does not fit in the page pool (" +
                std::to_string(pool_.memory().size()) + " bytes)");
  backend_->register_buffers(pool_.memory());
  sub_jobs_.resize(sub_jobs_for(config));
  for (auto& sj : sub_jobs_) sj.segments.reserve(io_size_ / sparse_granule + 2);
  if (config.throttle_percent < 100 || config.max_rate > 0)
    pacer_ = std::make_unique<Pacer>(config.throttle_percent, config.max_rate, Pacer::Clock::now());
  for (auto& sj : sub_jobs_) free_sub_jobs_.push_back(&sj);
  lists_ = std::make_unique<JobLists>();
  unsubmitted_.reserve(max_requests(config, max_destinations));
  completions_.resize(max_requests(config, max_destinations));
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
  const auto span_of = [&](const IoRegion& r) {
    const Placement p = backend_->placement(r.endpoint);
    return MediumSpan{p.medium, p.offset + region_byte(r), sectors_to_bytes(r.count)};
  };
  const MediumSpan source = span_of(from);
  std::array<MediumSpan, max_destinations> spans{};
  for (unsigned d = 0; d < dests.size(); ++d) {
    if (dests[d].count != from.count) throw Error("a destination's count differs from the source's");
    alignment = std::max(alignment, backend_->alignment(dests[d].endpoint));
    spans[d] = span_of(dests[d]);
  }
  const OverlapOrder order = overlap_order(source, std::span(spans).first(dests.size()));
  if ((flags & copy_verify) &&
      PagePool::capacity_for(pool_.pages(), std::min(io_size_, sectors_to_bytes(from.count))) < 2)
    throw Error("verifying needs two buffers of a sub-job's size at once; the page pool holds one");
  if ((flags & copy_write_seq) && order.descending)
    throw Error("writes in ascending order cannot serve a destination that overlaps the source from above");
  flags = effective_flags(flags);
  if (order.refused())
    throw Error(order.source_itself   ? "a destination is the source range itself"
                : order.dests_overlap ? "two destinations overlap each other"
                                      : "two destinations overlap the source from opposite sides: no copy order "
                                        "keeps the source intact");

  auto job = std::make_unique<Job>(Job{
      .from = from,
      .num_dests = static_cast<unsigned>(dests.size()),
      .flags = flags,
      .notify = std::move(notify),
      .plan = SubJobPlan(region_byte(from), sectors_to_bytes(from.count), io_size_, alignment),
      .order = order,
      .from_at = source.begin,
  });
  std::copy(dests.begin(), dests.end(), job->dests.begin());
  for (unsigned d = 0; d < dests.size(); ++d) job->dest_at[d] = spans[d].begin;
  queue(std::move(job));
}

void KcopydClient::zero(std::span<const IoRegion> dests, unsigned flags, NotifyFn notify) {
  if (dests.empty() || dests.size() > max_destinations)
    throw Error("a zero job needs 1 to " + std::to_string(max_destinations) + " destinations");
  std::uint32_t alignment = 1;
  std::array<MediumSpan, max_destinations> spans{};
  for (unsigned d = 0; d < dests.size(); ++d) {
    if (dests[d].count != dests[0].count) throw Error("the destinations of a zero job differ in size");
    alignment = std::max(alignment, backend_->alignment(dests[d].endpoint));
    const Placement p = backend_->placement(dests[d].endpoint);
    spans[d] = {p.medium, p.offset + region_byte(dests[d]), sectors_to_bytes(dests[d].count)};
  }
  // No source: overlap_order only sees the destinations (an empty source overlaps none).
  if (overlap_order({}, std::span(spans).first(dests.size())).dests_overlap)
    throw Error("two destinations overlap each other");
  {
    std::lock_guard lock(mutex_);  // zero() may run on several threads
    if (!zeroes_) {
      zeroes_ = std::make_unique<PagePool>((io_size_ + page_size - 1) / page_size);
      zero_buffer_ = zeroes_->get(io_size_);  // kept for good: every zero sub-job only reads it
      std::memset(zero_buffer_.data(), 0, zero_buffer_.size());
    }
  }
  flags = effective_flags(flags);
  auto job = std::make_unique<Job>(Job{
      .zeroing = true,
      .from = {0, dests[0].sector, dests[0].count},
      .num_dests = static_cast<unsigned>(dests.size()),
      .flags = flags & ~copy_sparse,
      .notify = std::move(notify),
      .plan = SubJobPlan(region_byte(dests[0]), sectors_to_bytes(dests[0].count), io_size_, alignment),
      .order = {},
  });
  std::copy(dests.begin(), dests.end(), job->dests.begin());
  queue(std::move(job));
}

// Makes room for the job's results (here, not in the I/O loop) and queues it.
void KcopydClient::queue(std::unique_ptr<Job> job) {
  job->live = (1u << job->num_dests) - 1;
  JobResult& result = job->result;
  result.sectors_total = job->from.count;
  // Disjoint ranges need a good sector between them: a small job needs little room.
  const auto room = list_error_ranges_
                        ? static_cast<std::size_t>(std::min<std::uint64_t>(listed_ranges, job->from.count / 2 + 1))
                        : 0;
  result.read_errors = ErrorRanges(job->zeroing ? 0 : room);
  for (unsigned d = 0; d < job->num_dests; ++d) {
    result.write_errors[d] = ErrorRanges(room);
    if (job->verify()) result.verify_errors[d] = ErrorRanges(room);
  }
  std::list<std::unique_ptr<Job>> node;  // allocated here: the I/O loop only moves it
  node.push_back(std::move(job));
  {
    std::lock_guard lock(mutex_);
    queued_jobs_.splice(queued_jobs_.end(), node);
  }
  queued_.notify_one();
}

// The I/O loop: the running jobs start sub-jobs while there are sub-jobs and
// pages; then one completion or more turn reads into writes and free pages,
// until every job is finished (Job::finished).
void KcopydClient::run() {
  while (take_queued_jobs()) {
    start_sub_jobs();
    const bool stopping = stop_requested_.load(std::memory_order_relaxed);
    if (stopping)  // every job ends now: look at each
      for (const auto& job : active_) lists_->touch(*job);
    while (Job* job = lists_->touched.pop_front()) {
      drop_stranded_writes(*job);
      if (!job->finished(stopping)) continue;
      if (lists_->starting.contains(*job)) lists_->starting.erase(*job);
      finish(*job);
      active_.erase(job->self);
    }
    if (active_.empty()) continue;
    // Nothing in flight and not finished: the pacer holds the next sub-job back
    // (held sub-jobs wait only for reads that were started before them).
    if (in_flight_ == 0) {
      pace_idle();
      continue;
    }
    submit_started();
    const std::size_t n = backend_->reap(completions_, 1);
    assert(n > 0);
    in_flight_ -= n;
    if (in_flight_ == 0 && pacer_) pacer_->io_idle(Pacer::Clock::now());
    for (std::size_t i = 0; i < n; ++i) {
      lists_->touch(*static_cast<Transfer*>(completions_[i]->owner)->sub_job->job);
      on_complete(*completions_[i]);
    }
  }
}

// Starts sub-jobs round-robin over the running jobs, one per job per round in
// the order they were queued (dm-kcopyd splits a large job so that others get
// pages between its pieces), until a job waits for a sub-job, pages or the
// pacer (later jobs then wait too: nobody overtakes it) or none has more to
// start.
void KcopydClient::start_sub_jobs() {
  const bool stopping = stop_requested_.load(std::memory_order_relaxed);
  for (bool started = true; started;) {
    started = false;
    for (Job* job = lists_->starting.head; job;) {
      Job* next = job->list_next[0];
      const Start s = start_sub_job(*job);
      if (s == Start::starved) {
        started = false;
        break;
      }
      if (s == Start::none && (job->all_started() || job->ended_early(stopping))) {
        lists_->starting.erase(*job);  // for good: it only waits for its sub-jobs now
        lists_->touch(*job);
      }
      started |= s == Start::started;
      job = next;
    }
  }
}

// Moves newly queued jobs to the running ones (their list nodes move: nothing
// is allocated). With an I/O thread, waits while nothing runs; returns false
// when nothing is left to run and the client closes (without an I/O thread:
// when nothing is left, which ends wait()). A job queued while requests are in
// flight is taken after a later completion.
bool KcopydClient::take_queued_jobs() {
  std::unique_lock lock(mutex_, std::defer_lock);
  const auto take = [this] {
    const bool none = active_.empty();
    const auto last = none ? active_.end() : std::prev(active_.end());  // where the new jobs begin after
    active_.splice(active_.end(), queued_jobs_);
    for (auto it = none ? active_.begin() : std::next(last); it != active_.end(); ++it) {
      (*it)->self = it;
      lists_->starting.push_back(**it);
      lists_->touch(**it);
    }
  };
  if (!active_.empty()) {
    // Jobs are running: never wait for a thread that is queueing more (the
    // loop would idle while the devices drain); take them next time round.
    if (lock.try_lock() && !queued_jobs_.empty()) take();
    return true;
  }
  lock.lock();
  if (threaded_) queued_.wait(lock, [this] { return closing_ || !queued_jobs_.empty(); });
  take();
  return !active_.empty();
}

// Sleeps while the pacer holds the next sub-job back: until the exact time it
// may start (no fixed tick: a millisecond's tick would cap 64 KiB sub-jobs at
// 64 MiB/s), at most 100 ms at a time (a signal ends the sleep early), so that
// a stop is seen soon. A late wake-up is made up by the pacer's credit.
void KcopydClient::pace_idle() {
  assert(pacer_);  // without one, an unfinished job always has a request in flight
  if (!pacer_) return;
  const auto now = Pacer::Clock::now();
  const auto wait = pacer_->sleep_for(now);
  if (wait <= Pacer::Duration{0}) return;
  const std::int64_t until =
      std::chrono::duration_cast<std::chrono::nanoseconds>((now + wait).time_since_epoch()).count();
  const timespec ts{static_cast<time_t>(until / 1'000'000'000), static_cast<long>(until % 1'000'000'000)};
  ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);  // steady_clock's clock
}

// A request joins the ones started since the last reap; they go to the backend
// together, just before the loop waits (one syscall for many, and the block
// layer can merge neighbours: the reads of consecutive small jobs, their writes).
void KcopydClient::submit(IoRequest& io) {
  if (in_flight_ == 0 && pacer_) pacer_->io_busy(Pacer::Clock::now());
  ++in_flight_;
  unsubmitted_.push_back(&io);
}

void KcopydClient::submit_started() {
  if (unsubmitted_.empty()) return;
  backend_->submit(unsubmitted_);
  unsubmitted_.clear();
}

// Stage free -> reading: one sub-job of `job`, if it has one to start and
// there is a free sub-job, pages for it and the pacer's leave. A zero job has
// nothing to read: its sub-jobs go straight to writing, from the shared zeroes.
KcopydClient::Start KcopydClient::start_sub_job(Job& job) {
  if (!job.may_start(stop_requested_.load(std::memory_order_relaxed))) return Start::none;
  if (free_sub_jobs_.empty()) return Start::starved;
  const Extent extent = job.at(job.next);
  if (pacer_ && !pacer_->may_start(job.zeroing ? 0 : extent.length, Pacer::Clock::now())) return Start::starved;
  const std::span<std::byte> data = job.zeroing ? zero_buffer_.first(extent.length) : pool_.get(extent.length);
  const std::span<std::byte> check = job.verify() && !data.empty() ? pool_.get(extent.length) : data.first(0);
  if (data.empty() || (job.verify() && check.empty())) {
    if (!job.zeroing && !data.empty()) pool_.put(data);
    return Start::starved;
  }
  SubJob& sj = *free_sub_jobs_.back();
  free_sub_jobs_.pop_back();
  sj.job = &job;
  sj.position = job.next++;
  sj.extent = extent;
  sj.pooled = !job.zeroing;
  sj.buffer = data;
  sj.check = check;
  ++job.active;
  if (job.zeroing) {
    sj.segments.assign(1, {0, sj.extent.length, Transfer::Kind::zero});
    start_writes(sj);
    return Start::started;
  }
  sj.set_stage(SubJob::Stage::reading);
  const std::uint64_t at = region_byte(job.from) + sj.extent.offset;
  if (job.sparse() && backend_->next_data(job.from.endpoint, at) >= at + sj.extent.length) {
    // A hole of the source file: nothing to read, every byte is zero.
    std::memset(sj.buffer.data(), 0, sj.buffer.size());
    read_done(sj);
    return Start::started;
  }
  if (pacer_) pacer_->started_reads(sj.extent.length, Pacer::Clock::now());
  sj.read.start(Transfer::Kind::read, 0, sj, job.from.endpoint, sj.buffer, at);
  submit(sj.read.io);
  return Start::started;
}

// Stage reading -> held or writing: a destination that overlaps the source
// waits until the source it overwrites has been read, and with write_seq a
// sub-job waits for its turn.
void KcopydClient::read_done(SubJob& sj) {
  find_segments(sj);
  if (!sj.job->order.gated && !sj.job->write_seq()) return start_writes(sj);
  sj.set_stage(SubJob::Stage::held);
  release_held_writes(*sj.job);
}

// Stage held -> writing, for held sub-jobs that no longer cover any source byte
// still unread and, with write_seq, whose turn it is. "Unread" is everything
// from the first sub-job (in the job's order) whose read has not completed: a
// conservative frontier, the head of the job's reading list (reads start in
// the job's order).
void KcopydClient::release_held_writes(Job& job) {
  const std::uint64_t frontier = job.reading.empty() ? job.next : job.reading.head->position;
  std::uint64_t unread_begin = 0, unread_len = 0;  // bytes from the start of the job
  if (frontier < job.plan.count()) {
    const Extent e = job.at(frontier);
    unread_begin = job.order.descending ? 0 : e.offset;
    unread_len = job.order.descending ? e.offset + e.length : sectors_to_bytes(job.from.count) - e.offset;
  }
  const std::uint64_t unread_at = job.from_at + unread_begin;
  const auto may_write = [&](const SubJob& sj) {
    if (job.write_seq() && sj.position != job.next_write) return false;
    for (unsigned d = 0; d < job.num_dests; ++d)
      if ((job.order.gated & (1u << d)) &&
          overlaps(job.dest_at[d] + sj.extent.offset, sj.extent.length, unread_at, unread_len))
        return false;
    return true;
  };
  // With write_seq, starting one sub-job's writes may make the next one's turn.
  for (bool started = true; started;) {
    started = false;
    for (SubJob* sj = job.held.head; sj;) {
      SubJob* next = sj->list_next[0];  // start_writes takes sj out of the list
      if (may_write(*sj)) {
        start_writes(*sj);
        started = job.write_seq();
      }
      sj = next;
    }
  }
}

// Stage held -> free, unwritten: a job that ended early starts no more reads, so
// a held write that waits for source sectors nobody will read never goes. Once
// no read is in flight, such sub-jobs end (writing them would destroy source
// data not yet copied).
void KcopydClient::drop_stranded_writes(Job& job) {
  if (!job.ended_early(stop_requested_.load(std::memory_order_relaxed)) || !job.reading.empty()) return;
  while (!job.held.empty()) end_sub_job(*job.held.head);
}

// Stage -> writing: the buffer fanned out to every live destination, all
// writes in one submit; each destination then gets the sub-job's segments in turn.
void KcopydClient::start_writes(SubJob& sj) {
  Job& job = *sj.job;
  sj.set_stage(SubJob::Stage::writing);
  if (job.write_seq()) ++job.next_write;
  sj.written = job.live;  // until a write fails
  sj.writes_pending = 0;
  const SubJob::Segment& first = sj.segments.front();
  for (unsigned d = 0; d < job.num_dests; ++d) {
    if (!(job.live & (1u << d))) continue;
    Transfer& w = sj.writes[d];
    w.start(first.kind, d, sj, job.dests[d].endpoint, sj.buffer.subspan(first.offset, first.length),
            region_byte(job.dests[d]) + sj.extent.offset + first.offset);
    ++sj.writes_pending;
    submit(w.io);
  }
  if (sj.writes_pending == 0) end_sub_job(sj);
}

// copy_sparse: the sub-job's runs of whole zero granules become punch
// segments, the rest data; otherwise one data segment.
void KcopydClient::find_segments(SubJob& sj) {
  sj.segments.clear();
  const std::uint64_t len = sj.buffer.size();
  if (!sj.job->sparse()) return sj.segments.push_back({0, len, Transfer::Kind::write});
  for (std::uint64_t at = 0; at < len; at += sparse_granule) {
    const std::uint64_t n = std::min(sparse_granule, len - at);
    const std::byte* p = sj.buffer.data() + at;
    const bool zero = p[0] == std::byte{0} && std::memcmp(p, p + 1, n - 1) == 0;
    const Transfer::Kind kind = zero ? Transfer::Kind::punch : Transfer::Kind::write;
    if (!sj.segments.empty() && sj.segments.back().kind == kind)
      sj.segments.back().length += n;
    else
      sj.segments.push_back({at, n, kind});
  }
}

void KcopydClient::write_done(SubJob& sj) {
  if (--sj.writes_pending > 0) return;
  if (!sj.job->verify()) return end_sub_job(sj);
  sj.set_stage(SubJob::Stage::verifying);
  verify_next(sj);
}

// Stage verifying: reads back the next destination this sub-job was written to
// without a failed block (a failed block already set that destination's bit),
// then the next; the sub-job ends after the last.
void KcopydClient::verify_next(SubJob& sj) {
  Job& job = *sj.job;
  const unsigned d = static_cast<unsigned>(std::countr_zero(sj.written));
  if (d >= job.num_dests) return end_sub_job(sj);
  sj.written &= ~(1u << d);
  const std::uint64_t at = region_byte(job.dests[d]) + sj.extent.offset;
  sj.verify.start(Transfer::Kind::verify, d, sj, job.dests[d].endpoint, sj.check, at);
  if (const int rc = backend_->drop_cache(job.dests[d].endpoint, at, sj.check.size()); rc < 0) {
    // What the device holds cannot be read back: a verify error of the whole piece.
    job.result.verify_errors[d].add(bytes_to_sectors(at), bytes_to_sectors(sj.check.size() + sector_size - 1), -rc);
    fail_destination(job, d);
    return verify_next(sj);
  }
  submit(sj.verify.io);
}

// A destination read back: every sector that differs from what was read from
// the source is a verify error (not compared where the read-back itself failed).
void KcopydClient::compare(Transfer& t) {
  SubJob& sj = *t.sub_job;
  Job& job = *sj.job;
  if (t.failed == 0) {
    const std::uint64_t first = bytes_to_sectors(t.offset);
    for (std::uint64_t at = 0; at < sj.buffer.size(); at += sector_size) {
      const std::size_t n = std::min<std::size_t>(sector_size, sj.buffer.size() - at);
      if (std::memcmp(sj.buffer.data() + at, sj.check.data() + at, n) == 0) continue;
      job.result.verify_errors[t.dest].add(first + bytes_to_sectors(at), 1, verify_mismatch);
      fail_destination(job, t.dest);
    }
  }
  verify_next(sj);
}

// Stage -> free: the buffer goes back to the pool.
void KcopydClient::end_sub_job(SubJob& sj) {
  Job& job = *sj.job;
  sectors_done_.fetch_add(bytes_to_sectors(sj.extent.length), std::memory_order_relaxed);
  if (sj.pooled) pool_.put(sj.buffer);
  if (!sj.check.empty()) pool_.put(sj.check);
  sj.set_stage(SubJob::Stage::free);
  sj.job = nullptr;
  free_sub_jobs_.push_back(&sj);
  --job.active;
}

// Destination d of `job` had a write, flush or verify error: its bit in
// write_err (and in the progress line's mask). Whether it is still written is
// the caller's rule (only a write error without copy_ignore_errors drops it).
void KcopydClient::fail_destination(Job& job, unsigned d) {
  job.result.write_err |= 1ul << d;
  failed_destinations_.fetch_or(1u << d, std::memory_order_relaxed);
}

// Flushes every destination that has not failed, then tells the caller.
void KcopydClient::finish(Job& job) {
  JobResult& result = job.result;
  result.stopped = !job.all_started() && stop_requested_.load(std::memory_order_relaxed);
  if (!(job.flags & copy_no_flush)) {
    for (unsigned d = 0; d < job.num_dests; ++d) {
      if (!(job.live & (1u << d))) continue;
      if (const int rc = backend_->flush(job.dests[d].endpoint); rc < 0) {
        result.flush_error[d] = -rc;
        fail_destination(job, d);
      }
    }
  }
  if (job.notify) job.notify(result);
}

// --- requests ------------------------------------------------------------------

void KcopydClient::on_complete(IoRequest& io) {
  Transfer& t = *static_cast<Transfer*>(io.owner);
  const std::size_t size = io.buffer.size();
  if (io.result > 0 && static_cast<std::size_t>(io.result) < size) {
    // A short transfer is not an error: continue where it stopped.
    t.next += static_cast<std::uint64_t>(io.result);
    io = t.request(t.next, t.end());
    return submit(io);
  }
  const bool ok = io.result > 0 || size == 0;  // 0 with bytes left: an unexpected end
  if (t.scanning) return ok ? scan_piece_done(t) : scan_piece_failed(t);
  if (!ok) return transfer_failed(t);
  transfer_done(t);
}

// A transfer has been through all of its bytes: whole, continued, or scanned.
void KcopydClient::transfer_done(Transfer& t) {
  SubJob& sj = *t.sub_job;
  Job& job = *sj.job;
  switch (t.kind) {
    case Transfer::Kind::read:
      if (t.failed > 0 && !job.ignore_errors()) {
        end_sub_job(sj);  // unwritten: the copy stops (Job::ended_early)
        return release_held_writes(job);
      }
      return read_done(sj);
    case Transfer::Kind::write:
    case Transfer::Kind::punch:
    case Transfer::Kind::zero:
      if (++t.segment < sj.segments.size()) {
        const SubJob::Segment& seg = sj.segments[t.segment];
        t.continue_with(seg.kind, sj.buffer.subspan(seg.offset, seg.length),
                        region_byte(job.dests[t.dest]) + sj.extent.offset + seg.offset);
        return submit(t.io);
      }
      job.result.sectors_written[t.dest] += bytes_to_sectors(sj.extent.length - t.failed);
      if (t.failed > 0) sj.written &= ~(1u << t.dest);
      return write_done(sj);
    case Transfer::Kind::verify:
      return compare(t);
  }
}

// A transfer failed (-errno, or an unexpected end). A failed read is scanned to
// find exactly which blocks fail (the block layer may have merged it with a
// neighbour; a transient error heals). With DM_KCOPYD_IGNORE_ERROR a failed
// write is scanned too, so that only the blocks that really fail are lost;
// without it, the destination is dropped.
void KcopydClient::transfer_failed(Transfer& t) {
  SubJob& sj = *t.sub_job;
  Job& job = *sj.job;
  if (t.is_write() && !job.ignore_errors()) {
    sj.written &= ~(1u << t.dest);
    const int error = t.io.result < 0 ? static_cast<int>(-t.io.result) : EIO;
    job.result.write_errors[t.dest].add(bytes_to_sectors(t.offset + t.next),
                                        bytes_to_sectors(t.buffer.size() - t.next + sector_size - 1), error);
    fail_destination(job, t.dest);
    job.live &= ~(1u << t.dest);  // nothing more is written to it
    job.result.dropped |= 1ul << t.dest;
    return write_done(sj);
  }
  if (t.kind == Transfer::Kind::read) ++job.read_scans;
  const std::uint64_t block = std::max<std::uint64_t>(backend_->alignment(t.endpoint), sector_size);
  const std::uint64_t max_chunk = std::max(block, (t.buffer.size() - t.next) / 16 / block * block);
  t.scanning = true;
  t.scan = {block, max_chunk, max_chunk, 0};
  scan_next(t);
}

void KcopydClient::scan_next(Transfer& t) {
  if (t.next == t.buffer.size()) {
    t.scanning = false;
    if (t.kind == Transfer::Kind::read) --t.sub_job->job->read_scans;
    return transfer_done(t);
  }
  // The piece ends on a logical-block boundary of the endpoint, at least one block on.
  const std::uint64_t block = t.scan.block;
  const std::uint64_t at = t.offset + t.next;
  std::uint64_t end = (at + t.scan.chunk) / block * block;
  if (end <= at) end = (at / block + 1) * block;
  t.scan.piece_end = std::min(end - t.offset, t.buffer.size());
  t.io = t.request(t.next, t.scan.piece_end);
  submit(t.io);
}

void KcopydClient::scan_piece_done(Transfer& t) {
  t.next = t.scan.piece_end;
  t.scan.chunk = std::min(t.scan.chunk * 2, t.scan.max_chunk);
  scan_next(t);
}

// What was done of the piece stays done; the rest is tried again smaller, or,
// at one block, recorded as bad (and, on a read, written as zeroes, as kcopyd does).
void KcopydClient::scan_piece_failed(Transfer& t) {
  const std::uint64_t left = t.scan.piece_end - t.next;
  if (left > t.scan.block) {
    t.scan.chunk = std::max(t.scan.block, left / 8 / t.scan.block * t.scan.block);
    return scan_next(t);
  }
  Job& job = *t.sub_job->job;
  const int error = t.io.result < 0 ? static_cast<int>(-t.io.result) : ended_early;
  const std::uint64_t sector = bytes_to_sectors(t.offset + t.next), count = bytes_to_sectors(left + sector_size - 1);
  switch (t.kind) {
    case Transfer::Kind::read:
      job.result.read_errors.add(sector, count, error);
      job.result.read_err = true;
      std::memset(t.io.buffer.data(), 0, left);
      break;
    case Transfer::Kind::write:
    case Transfer::Kind::punch:
    case Transfer::Kind::zero:
      job.result.write_errors[t.dest].add(sector, count, error);
      fail_destination(job, t.dest);
      break;
    case Transfer::Kind::verify:
      job.result.verify_errors[t.dest].add(sector, count, error);
      fail_destination(job, t.dest);
      break;
  }
  t.failed += left;
  t.next = t.scan.piece_end;
  scan_next(t);
}

}  // namespace kcopy
