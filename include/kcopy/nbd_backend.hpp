#pragma once
// The NBD backend: endpoints that are NBD exports (nbdkit, qemu-nbd,
// nbd-server), reached through libnbd's asynchronous API, after nbdcopy's
// copy/nbd-ops.c: one or more connections per export (multi-conn), requests
// round-robin over them, each connection's state machine moved on by poll(2).

#include <poll.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kcopy/io_backend.hpp"

struct nbd_handle;

namespace kcopy {

/// How to open an NBD export.
struct NbdOpenOptions {
  bool write = false;            ///< a destination is on it: a read-only export is refused
  unsigned max_connections = 4;  ///< connections to open where the server allows multi-conn; else 1
};

/// One connected NBD export: 1 to max_connections libnbd handles, its size,
/// block sizes and capabilities (asked once at open, as nbdcopy does). Move-only;
/// closes its handles (nbd_close) when destroyed. Used from one thread at a time.
class NbdExport {
 public:
  /// Connects to `uri` (nbd_connect_uri; local files the URI names, its
  /// tls-psk-file and tls-certificates, are allowed, as nbdcopy allows them:
  /// the URI is the user's own), then opens more connections, up to
  /// options.max_connections, if the server says multi-conn is safe
  /// (nbd_can_multi_conn); a further connection that fails is done without.
  /// Throws kcopy::Error "ROLE 'URI': why" (the URI redacted, see
  /// redacted_uri) when the connection fails, or when options.write and the
  /// export is read-only (EROFS), or its size cannot be had.
  static NbdExport open(const std::string& uri, const std::string& role, const NbdOpenOptions& options);

  NbdExport(NbdExport&&) noexcept;
  NbdExport& operator=(NbdExport&&) noexcept;
  ~NbdExport();

  /// The URI as given: may hold a password; print redacted_uri(uri()).
  const std::string& uri() const { return uri_; }
  /// Bytes (nbd_get_size).
  std::uint64_t size_bytes() const { return size_bytes_; }
  /// Bytes: the server's minimum block size (offsets and lengths not aligned
  /// to it fail with EINVAL), or 1 when it advertises none.
  std::uint32_t min_block_size() const { return min_block_; }
  /// Bytes: the server's preferred block size (smaller writes may cost a
  /// read-modify-write), or 4096 when it advertises none.
  std::uint32_t preferred_block_size() const { return preferred_block_; }
  /// Bytes: the most one read or write command transfers: the server's
  /// maximum block size, at most 32 MiB (some servers drop a connection on
  /// larger ones, and libnbd refuses more than 64 MiB). NbdBackend returns a
  /// longer request short, at this length; the engine continues it.
  std::uint32_t max_request_bytes() const { return max_request_; }
  bool read_only() const { return read_only_; }
  /// Whether the server does write-zeroes (NBD_CMD_WRITE_ZEROES); else zero
  /// requests are written as data.
  bool can_zero() const { return can_zero_; }
  /// Whether the server takes flush commands; else flush() has nothing to do.
  bool can_flush() const { return can_flush_; }
  bool can_multi_conn() const { return can_multi_conn_; }
  /// How many connections were opened (1 without multi-conn).
  std::size_t connections() const { return handles_.size(); }

 private:
  friend class NbdBackend;
  struct HandleCloser {
    void operator()(nbd_handle* h) const;
  };
  using Handle = std::unique_ptr<nbd_handle, HandleCloser>;

  NbdExport() = default;

  std::string uri_;
  std::vector<Handle> handles_;
  std::uint64_t size_bytes_ = 0;
  std::uint32_t min_block_ = 1;
  std::uint32_t preferred_block_ = 4096;
  std::uint32_t max_request_ = 32u << 20;
  bool read_only_ = false;
  bool can_zero_ = false;
  bool can_flush_ = false;
  bool can_multi_conn_ = false;
};

/// IoBackend over NBD exports: endpoint i is exports[i]; offsets and lengths
/// are bytes. Requests go round-robin over an export's live connections
/// (nbd_aio_pread / nbd_aio_pwrite / nbd_aio_zero); a completion callback sets
/// IoRequest::result and queues the request for reap(). Not movable: libnbd
/// holds pointers into it while requests are in flight.
///
/// Failures come back as -errno, never as a hang:
///  - the server's error for a request (EIO, ENOSPC, ...) on that request alone;
///  - a connection that dies (the server went away: nbd_aio_is_dead) fails
///    every request on it that libnbd has not already failed with -ECONNRESET,
///    and is not used again; with none left, new requests fail with -ENOTCONN;
///  - a connection with requests in flight and no progress (nothing to read or
///    write on its socket, no completion) for `stall_timeout` is closed and
///    its requests fail with -ETIMEDOUT (a stopped or wedged server, a network
///    that drops everything: TCP alone would wait for many minutes).
/// Reads past the end of the export are short (0 at the end), writes past it
/// fail with -ENOSPC, as on a block device. Zero requests use write-zeroes
/// (NO_HOLE for IoOp::zero; IoOp::punch lets the server deallocate) where the
/// server has it; elsewhere, and after the server says it cannot (ENOTSUP,
/// EOPNOTSUPP: remembered), their buffer of zeroes is written.
///
/// The server's minimum block size is kept to (a 4Kn local device gets the
/// same through the page cache): a request that starts inside a block, or is
/// shorter than one, is done for that block only, by read-modify-write of the
/// whole block in a bounce buffer (a read copies its part out; a write or zero
/// request patches its part in and writes the block), and comes back short
/// (the engine continues it, as after max_request_bytes()); an aligned request
/// is done for its whole blocks, and its unaligned tail comes back short, to be
/// done alone. Read-modify-writes of one block (neighbouring sub-jobs sharing
/// it) run one after the other, on the export's first live connection, so that
/// none loses what another wrote. An error on the block fails the request.
class NbdBackend final : public IoBackend {
 public:
  static constexpr std::chrono::milliseconds default_stall_timeout{30'000};
  /// Read-modify-writes of a partial block in flight at once (one bounce
  /// buffer of the largest minimum block each, allocated up front); more wait.
  /// Only a region's head and tail, and the ends of the sub-jobs of a
  /// destination aligned otherwise than the source, need one.
  static constexpr std::size_t max_partial_blocks = 64;

  /// Takes the exports; `max_requests` bounds the requests in flight at once
  /// (everything submit() and reap() need is allocated here, but what libnbd
  /// allocates per command). `stall_timeout` as the class says (tests use a
  /// short one). Never throws but std::bad_alloc.
  NbdBackend(std::vector<NbdExport> exports, std::size_t max_requests,
             std::chrono::milliseconds stall_timeout = default_stall_timeout);
  /// Closes every connection: requests still in flight are abandoned (they
  /// never come back; their buffers are no longer touched).
  ~NbdBackend() override;
  NbdBackend(const NbdBackend&) = delete;
  NbdBackend& operator=(const NbdBackend&) = delete;

  /// As IoBackend says; a request longer than max_request_bytes() (1 GiB for
  /// zeroing), or not aligned to the minimum block size (see the class), is
  /// done in part and comes back short. Requests refused at once (no live
  /// connection, a range libnbd rejects) come back from the next reap().
  void submit(std::span<IoRequest* const> requests) override;
  /// As IoBackend says. Waits in poll(2) on the busy connections' sockets (a
  /// signal ends one wait; the loop goes on), at most until the earliest stall
  /// deadline. With min_completions 0, moves every connection on as far as it
  /// goes without waiting.
  std::size_t reap(std::span<IoRequest*> out, std::size_t min_completions) override;
  /// NBD_CMD_FLUSH on each live connection of the export, synchronously (other
  /// requests in flight go on meanwhile and are reaped later): 0, or -errno
  /// from the server, -ECONNRESET / -ETIMEDOUT as for requests, -ENOTCONN with
  /// no live connection. 0 when the server has no flush.
  int flush(unsigned endpoint) override;
  /// The export's minimum block size (1 when it has none): requests aligned to
  /// it need no read-modify-write.
  std::uint32_t alignment(unsigned endpoint) const override { return exports_[endpoint].min_block_size(); }
  /// Exports of the same URI (the same string) are one medium, numbered by the
  /// first endpoint with that URI; any other is a medium of its own. Two URIs
  /// for one export (a host name and its address) are not recognised as one.
  Placement placement(unsigned endpoint) const override { return {media_[endpoint], 0}; }

  /// One descriptor per connection: the socket of each busy one, with the
  /// direction libnbd waits for (nbd_aio_get_fd, nbd_aio_get_direction).
  std::size_t poll_fd_count() const override { return connections_.size(); }
  int poll_fds(std::span<pollfd> out) override;
  /// Until the earliest stall deadline; 0 when reap() has something to do at
  /// once; -1 with nothing in flight.
  int poll_timeout_ms() const override;

  /// The export of `endpoint` (its size, block sizes, capabilities).
  const NbdExport& nbd_export(unsigned endpoint) const { return exports_[endpoint]; }

 private:
  using Clock = std::chrono::steady_clock;

  // One connection (libnbd handle) of an export.
  struct Connection {
    nbd_handle* handle = nullptr;  // owned by the export's handles_[index]; null once closed
    unsigned endpoint = 0;
    unsigned index = 0;    // in the export's handles_
    std::size_t busy = 0;  // commands in flight on it (requests and flushes)
    Clock::time_point last_progress;
    int error = 0;  // why it was closed (ECONNRESET, ETIMEDOUT), or 0 while alive
  };

  struct Slot;

  // A block-sized bounce buffer for a read-modify-write.
  struct Bounce {
    std::span<std::byte> data;
    Slot* owner = nullptr;  // null while free
  };

  // A request on its way through libnbd: the completion callback's user_data.
  struct Slot {
    enum class Phase : std::uint8_t {
      direct,         // the request's own bytes, on a connection
      zero_refused,   // in fallbacks_: the server could not zero it, to be written as data
      block_read,     // a partial block: the whole block being read into `bounce`
      block_patched,  // in patched_: the block patched, its write not yet sent
      block_write,    // the patched block being written
    };
    NbdBackend* backend = nullptr;
    IoRequest* req = nullptr;
    unsigned connection = 0;
    std::uint32_t length = 0;  // bytes of the request done: asked of the server, or patched in the block
    bool busy = false;
    bool written_as_data = false;  // a zero request sent as a write
    Phase phase = Phase::direct;
    Bounce* bounce = nullptr;    // a partial block's
    std::uint64_t block_at = 0;  // bytes: a partial block's offset on the export
    std::uint32_t block_length = 0;
    std::uint32_t head = 0;  // bytes of the block before the request's part
  };

  // A flush waited for inside flush().
  struct FlushWait {
    NbdBackend* backend = nullptr;
    unsigned connection = 0;
    bool done = false;
    int error = 0;
  };

  static int on_complete(void* user_data, int* error);
  static int on_flushed(void* user_data, int* error);

  void start(IoRequest* req, bool as_data);
  void start_partial(IoRequest* req, std::uint64_t length);
  bool may_start_partial(const IoRequest& req) const;
  Slot* take_slot();
  void release(Slot* slot, long result);
  void complete_now(IoRequest* req, long result);
  int pick_connection(unsigned endpoint, bool first_live = false);
  int connection_error(unsigned endpoint) const;
  void started_on(Connection& c);
  void finished_on(Connection& c);
  void run(int timeout_ms);
  void fail_connection(unsigned connection, int error);
  void restart_fallbacks();
  void write_patched();
  void start_blocked();
  std::size_t take_done(std::span<IoRequest*> out, std::size_t n);

  std::chrono::milliseconds stall_timeout_;
  std::vector<Slot> slots_;
  std::vector<Slot*> free_slots_;
  std::vector<IoRequest*> done_;          // completed, waiting for reap()
  std::vector<Slot*> fallbacks_;          // zeroing the server refused: to be written as data
  std::vector<std::byte> bounce_memory_;  // max_partial_blocks of the largest minimum block, or none
  std::vector<Bounce> bounces_;
  std::vector<Slot*> patched_;       // partial blocks patched in a callback: their writes go from run()
  std::vector<IoRequest*> blocked_;  // partial blocks waiting for a bounce, or for their block (in order)
  std::size_t in_flight_ = 0;        // submitted, not yet in done_
  std::vector<Connection> connections_;
  std::vector<std::vector<unsigned>> endpoint_connections_;  // endpoint -> its connections
  std::vector<std::size_t> next_connection_;                 // round-robin position per endpoint
  std::vector<bool> can_zero_;                               // per endpoint; cleared on ENOTSUP
  std::vector<unsigned> media_;
  std::vector<pollfd> pollfds_;
  std::vector<unsigned> polled_;  // pollfds_[i] is connections_[polled_[i]]
  // Last: destroyed first, so that nbd_close runs while everything above exists.
  std::vector<NbdExport> exports_;
};

}  // namespace kcopy
