#pragma once
// The kcopyd client: asynchronous copies of a region to up to six regions through
// a bounded page pool (dm_kcopyd_client_create / dm_kcopyd_copy / dm_kcopyd_client_destroy).

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "kcopy/api.hpp"
#include "kcopy/error_ranges.hpp"
#include "kcopy/io_backend.hpp"
#include "kcopy/pacer.hpp"
#include "kcopy/page_pool.hpp"
#include "kcopy/units.hpp"

namespace kcopy {

/// A range of sectors on one endpoint (struct dm_io_region: bdev, sector, count).
/// `endpoint` indexes the client's IoBackend, one endpoint per device: regions on
/// the same endpoint are on the same device (that is how overlap is seen).
/// Sector and count are 512-byte sectors.
struct IoRegion {
  unsigned endpoint = 0;
  std::uint64_t sector = 0;
  std::uint64_t count = 0;
};

/// Job flags (the DM_KCOPYD_* flags of dm_kcopyd_copy).
enum CopyFlag : unsigned {
  copy_ignore_errors = 1u << 0,  ///< DM_KCOPYD_IGNORE_ERROR: go on past errors
  copy_write_seq = 1u << 1,      ///< DM_KCOPYD_WRITE_SEQ: each destination's writes are
                                 ///< issued in ascending order (zoned devices); as in
                                 ///< dm-kcopyd it clears copy_ignore_errors
  copy_no_flush = 1u << 2,       ///< skip the final fdatasync of each destination
  copy_verify = 1u << 3,         ///< read every destination back and compare it with
                                 ///< what was read from the source (needs two pool
                                 ///< buffers per sub-job)
  copy_sparse = 1u << 4,         ///< source runs of zeroes (whole sparse_granule units)
                                 ///< become punch requests instead of data writes
};

/// The flags a job runs with: copy_write_seq clears copy_ignore_errors, as in
/// dm-kcopyd (a write error then drops that destination). The one place this
/// rule lives: the engine applies it to every job, and callers that act on the
/// flags themselves (the mapfile copy, the reports) ask it too.
constexpr unsigned effective_flags(unsigned flags) {
  return flags & copy_write_seq ? flags & ~copy_ignore_errors : flags;
}

/// The unit in which copy_sparse looks for zeroes: runs of whole 4 KiB pieces
/// of a sub-job (aligned to the sub-job's start) that hold only zero bytes.
inline constexpr std::uint64_t sparse_granule = 4096;

/// The `error` of a verify ErrorRange whose sectors were read back with other
/// data than was written (a read-back that failed carries its errno instead).
inline constexpr int verify_mismatch = 0;

/// The `error` of an ErrorRange whose sectors lie past the end of the endpoint
/// as it is now (a read of 0 bytes with bytes left: a file that shrank during
/// the copy). ENODATA, so that the C API and the JSON report still get an errno.
inline constexpr int ended_early = ENODATA;

/// What a finished job hands to its notify function (dm_kcopyd_notify_fn's
/// read_err and write_err, with the details a user needs).
struct JobResult {
  bool read_err = false;                                    ///< the source had a read error
  unsigned long write_err = 0;                              ///< bit i: destination i had a write, flush or verify error
  unsigned long dropped = 0;                                ///< bit i: destination i was dropped after a write
                                                            ///< error (without copy_ignore_errors): nothing more
                                                            ///< was written to it, and it lacks the rest of the job
  bool stopped = false;                                     ///< stop() cut the job short
  ErrorRanges read_errors;                                  ///< failed source ranges, sorted and merged
  std::array<ErrorRanges, max_destinations> write_errors;   ///< failed ranges, each
  std::array<ErrorRanges, max_destinations> verify_errors;  ///< ranges read back wrong (verify_mismatch)
                                                            ///< or not at all (errno), each
  std::array<int, max_destinations> flush_error{};          ///< positive errno, or 0
  std::array<std::uint64_t, max_destinations> sectors_written{};  ///< completed, each
  std::uint64_t sectors_total = 0;                                ///< the job's size
};

/// Called once per job when it has ended: on the client's I/O thread, or in wait().
using NotifyFn = std::function<void(const JobResult&)>;

/// The defaults, tuned with scripts/bench on loop devices (see the README): a few
/// sub-jobs in flight beat a deep queue there, and 512 KiB is kcopyd's own
/// sub-job size.
inline constexpr std::uint64_t default_pages = 512;          // 2 MiB: 4 sub-jobs in flight
inline constexpr std::uint64_t default_io_size = 512 << 10;  // bytes
/// The command's pool when a region is an NBD export: a server across a socket
/// needs more in flight than a local device (8 MiB: 16 sub-jobs; scripts/bench
/// case 11 on the disk: 4 sub-jobs were 0.8-0.9x nbdcopy's speed, 16 were 1.15-1.24x).
inline constexpr std::uint64_t nbd_default_pages = 2048;
/// The most pool buffers (sub-jobs in flight) a client may have: every one costs
/// bookkeeping and a request per destination in the kernel (AIO contexts are
/// limited system-wide by /proc/sys/fs/aio-max-nr, 65536 by default).
inline constexpr std::uint64_t max_sub_jobs_in_flight = 4096;
/// The size of a small job the client keeps sub-jobs for: a client of P pages
/// can have P / 16 sub-jobs of 64 KiB (the region size of dm-mirror) in flight.
inline constexpr std::uint64_t small_sub_job_bytes = 64 << 10;

/// Client settings (kcopyd_client_create's num_pages, and the sub-job size).
struct ClientConfig {
  std::uint64_t pages = default_pages;      ///< 4 KiB pages of the page pool
  std::uint64_t io_size = default_io_size;  ///< bytes per sub-job (a multiple of 512)
  /// true: the client runs its jobs on an I/O thread of its own (as kcopyd on its
  /// workqueue). false: no thread; jobs run on the caller's thread in wait().
  bool io_thread = true;
  /// dm_kcopyd_throttle: the devices are busy at most this percent of the time
  /// (1-100; 100 = no throttle). See Pacer.
  unsigned throttle_percent = 100;
  /// At most this many bytes per second of source reads (0 = no limit).
  std::uint64_t max_rate = 0;
  /// false: jobs list no failed ranges (JobResult's lists stay empty and only
  /// count their sectors as overflow), so that a job allocates nothing for
  /// them: for callers that only look at read_err and write_err (the C API).
  bool list_error_ranges = true;
};

/// A kcopyd client: owns the page pool, the sub-jobs and (unless told otherwise)
/// one I/O thread that runs every job of the client. Jobs run at the same time,
/// sharing the pool: each sub-job takes the pages its bytes need, and the
/// running jobs start one sub-job each in turn, in the order they were queued
/// (a job waits for pages, never fails for want of them; while a job waits,
/// later jobs wait too, so a large job is not starved by small ones, nor small
/// ones by a large one). One job's errors never touch another's result.
///
/// Inside a job: reads of sub-jobs are issued while the pool has buffers (the pool
/// bounds the queue depth); a completed read is written to every live destination
/// from the same buffer in one submit; the buffer returns to the pool when its last
/// write completes. A read error stops new sub-jobs (I/O in flight drains); a write
/// error drops that destination and the others go on. With copy_ignore_errors
/// neither stops the job: the failed request is scanned again down to single
/// logical blocks, blocks that still fail are recorded, and unreadable blocks are
/// written as zeroes. (A failed read is scanned in any case, to name the exact
/// bad sectors; without copy_ignore_errors its sub-job is then not written.)
/// Short transfers continue where they stopped. At the end every destination
/// still written is flushed unless copy_no_flush.
///
/// A destination on the source's medium (the same endpoint, or one whose
/// IoBackend::placement says it shares the medium: a loop device and its backing
/// file) may overlap the source range: sub-jobs
/// then run in descending order when the destination is above the source, and a
/// sub-job's writes wait until no source sector they cover is still unread, so
/// the result is that of memmove.
///
/// A sub-job's stage is one field, free -> reading -> (held) -> writing ->
/// (verifying) -> free, with its transitions in kcopyd.cpp in that order. With
/// copy_write_seq a sub-job is also held until the one before it has started
/// its writes; with copy_sparse its zero runs go out as punch requests; with
/// copy_verify each destination is read back into a second buffer and compared.
/// A zero job (zero()) has no read: its sub-jobs start at writing, from one
/// shared zeroed buffer. ClientConfig's throttle and max rate hold new sub-jobs
/// back (Pacer); the loop then sleeps at most 100 ms at a time.
class KcopydClient {
 public:
  /// kcopyd_client_create: allocates the page pool (`pages` pages) and every
  /// sub-job (sub_jobs_for(config)) up front, and starts the I/O thread (if
  /// config.io_thread). Takes ownership of the backend. Throws kcopy::Error on
  /// bad sizes (io_size not a positive multiple of 512, or larger than the
  /// pool) or no memory.
  KCOPY_API KcopydClient(std::unique_ptr<IoBackend> backend, const ClientConfig& config);
  /// dm_kcopyd_client_destroy: waits for every queued job to end (running them
  /// here without an I/O thread), then stops the I/O thread. Must not be
  /// called from a notify function (it would wait for itself).
  KCOPY_API ~KcopydClient();
  KcopydClient(const KcopydClient&) = delete;
  KcopydClient& operator=(const KcopydClient&) = delete;

  /// dm_kcopyd_copy: queues a copy of `from` to every region of `dests` (1 to 6,
  /// the same count as `from`) and returns at once; `notify` runs when it ends.
  /// Any thread may call it, a notify function included, at any time before
  /// the client's destruction begins.
  /// Allocates the job (and room for its error lists) here, not in the I/O loop.
  /// Throws kcopy::Error for a count mismatch, a bad number of destinations, or
  /// a layout overlap_order refuses (a destination equal to the source range,
  /// destinations overlapping each other or the source from opposite sides), or
  /// copy_write_seq with a destination that overlaps the source from above
  /// (memmove would need descending writes).
  KCOPY_API void copy(const IoRegion& from, std::span<const IoRegion> dests, unsigned flags, NotifyFn notify);

  /// dm_kcopyd_zero: queues a job that makes every region of `dests` (1 to 6,
  /// all of the same count) read as zeroes, and returns at once; `notify` runs
  /// when it ends (read_err is never set). Each sub-job is one IoOp::zero
  /// request per destination (the write-zeroes offload, or writes from one
  /// shared zeroed buffer where there is none). copy_ignore_errors,
  /// copy_write_seq, copy_no_flush and copy_verify apply as for copies.
  /// Throws kcopy::Error for bad counts or destinations that overlap.
  KCOPY_API void zero(std::span<const IoRegion> dests, unsigned flags, NotifyFn notify);

  /// Without an I/O thread: runs every queued job on this thread and returns
  /// when none is left (notify functions run here). With one: does nothing.
  KCOPY_API void wait();

  /// Adds an endpoint to the backend for jobs queued after it (IoBackend::
  /// add_endpoint: the library's devices, opened while the client runs) and
  /// returns its index, or -errno. Any thread; the caller keeps calls to it
  /// from running at the same time.
  int add_endpoint(const FdEndpoint& endpoint) { return backend_->add_endpoint(endpoint); }

  /// Stops every job: no new sub-job starts, I/O in flight drains, destinations
  /// are flushed, and the jobs end with `stopped`. Async-signal-safe.
  void stop() { stop_requested_.store(true, std::memory_order_relaxed); }

  /// How many sub-jobs a client with `config` has: as many as its pool holds
  /// of io_size bytes, or of small_sub_job_bytes where that is more, at most
  /// max_sub_jobs_in_flight.
  KCOPY_API static std::size_t sub_jobs_for(const ClientConfig& config);
  /// The most requests a client with `config` has in flight at once when its
  /// jobs have at most `destinations` destinations: size the backend (AioBackend's
  /// max_requests) with it.
  KCOPY_API static std::size_t max_requests(const ClientConfig& config, unsigned destinations);

  /// Sectors copied to every live destination so far, over all jobs (for progress).
  std::uint64_t sectors_done() const { return sectors_done_.load(std::memory_order_relaxed); }
  /// Bit d: destination d of some job has failed (a write, flush or verify
  /// error) so far. For progress; the job's result is what counts.
  unsigned failed_destinations() const { return failed_destinations_.load(std::memory_order_relaxed); }

 private:
  struct Job;
  struct JobLists;
  struct SubJob;
  struct Transfer;

  void run();
  bool take_queued_jobs();
  // The stages of a sub-job, in order (see SubJob::Stage in kcopyd.cpp).
  enum class Start { started, none, starved };  // what start_sub_job did
  void start_sub_jobs();
  Start start_sub_job(Job& job);
  void read_done(SubJob& sj);
  void release_held_writes(Job& job);
  void drop_stranded_writes(Job& job);
  void start_writes(SubJob& sj);
  void write_done(SubJob& sj);
  void verify_next(SubJob& sj);
  void compare(Transfer& t);
  void end_sub_job(SubJob& sj);
  void finish(Job& job);
  void fail_destination(Job& job, unsigned d);
  // One request's completion, and what a failed one turns into.
  void on_complete(IoRequest& io);
  void transfer_done(Transfer& t);
  void transfer_failed(Transfer& t);
  void scan_next(Transfer& t);
  void scan_piece_done(Transfer& t);
  void scan_piece_failed(Transfer& t);
  void submit(IoRequest& io);
  void submit_started();
  void queue(std::unique_ptr<Job> job);
  void find_segments(SubJob& sj);
  void pace_idle();

  std::unique_ptr<IoBackend> backend_;
  std::uint64_t io_size_;
  const bool threaded_;  // jobs run on io_thread_ (else in wait())
  const bool list_error_ranges_;
  PagePool pool_;
  std::vector<SubJob> sub_jobs_;
  std::vector<SubJob*> free_sub_jobs_;
  std::vector<IoRequest*> unsubmitted_;  // started since the last reap, for one submit
  std::vector<IoRequest*> completions_;  // reap() output
  std::size_t in_flight_ = 0;            // requests submitted and not yet reaped
  std::unique_ptr<Pacer> pacer_;         // --throttle / --max-rate, when on
  std::unique_ptr<PagePool> zeroes_;     // owns the zeroed buffer of zero jobs, made by the first
  std::span<std::byte> zero_buffer_;     // that buffer (aligned, io_size bytes of zeroes; set under mutex_)

  std::list<std::unique_ptr<Job>> active_;  // running, in the order queued (I/O loop only)
  std::unique_ptr<JobLists> lists_;         // which of them to look at (I/O loop only)

  std::mutex mutex_;  // guards what follows up to closing_
  std::condition_variable queued_;
  std::list<std::unique_ptr<Job>> queued_jobs_;  // queued, not yet taken by the I/O loop
  bool closing_ = false;
  std::atomic<bool> stop_requested_{false};
  std::atomic<std::uint64_t> sectors_done_{0};
  std::atomic<unsigned> failed_destinations_{0};
  std::thread io_thread_;  // last: starts after everything above exists (if at all)
};

}  // namespace kcopy
