#include "kcopy/nbd_backend.hpp"

#include <libnbd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <limits>

#include "kcopy/error.hpp"
#include "kcopy/nbd_uri.hpp"
#include "kcopy/quote.hpp"

namespace kcopy {

namespace {

// nbdcopy's MAX_REQUEST_SIZE: servers that advertise no maximum may drop a
// connection on larger requests.
constexpr std::uint32_t max_request_default = 32u << 20;
// Write-zeroes carries no payload, but its length is 32 bits on the wire.
constexpr std::uint64_t max_zero_request = std::uint64_t{1} << 30;

// Every occurrence of `what` in `text` replaced by `with`.
void replace_all(std::string& text, std::string_view what, std::string_view with) {
  if (what.empty()) return;
  for (std::size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += with.size())
    text.replace(at, what.size(), with);
}

// libnbd's last error message, with `uri` in its redacted form and none of
// its secrets, should libnbd quote them.
std::string nbd_message(const std::string& uri) {
  const char* raw = nbd_get_error();
  std::string text = raw ? raw : "unknown error";
  replace_all(text, uri, redacted_uri(uri));
  for (const std::string& secret : uri_secrets(uri)) replace_all(text, secret, "\u2026");
  return printable(text);
}

int nbd_errno_or(int fallback) {
  const int err = nbd_get_errno();
  return err != 0 ? err : fallback;
}

bool aligned(std::uint64_t value, std::uint32_t block) { return block <= 1 || value % block == 0; }

}  // namespace

// --- NbdExport -------------------------------------------------------------------

void NbdExport::HandleCloser::operator()(nbd_handle* h) const { nbd_close(h); }

NbdExport::NbdExport(NbdExport&&) noexcept = default;
NbdExport& NbdExport::operator=(NbdExport&&) noexcept = default;
NbdExport::~NbdExport() = default;

NbdExport NbdExport::open(const std::string& uri, const std::string& role, const NbdOpenOptions& options) {
  const std::string name = role + " " + quote(redacted_uri(uri));
  // The URI is the user's own, typed on the command line: it may name local
  // files (tls-psk-file, tls-certificates), as nbdcopy allows.
  const auto create = []() {
    Handle h(nbd_create());
    if (h) nbd_set_uri_allow_local_file(h.get(), true);
    return h;
  };
  auto connect = [&uri, &create]() -> Handle {
    Handle h = create();
    if (!h) return h;
    if (nbd_connect_uri(h.get(), uri.c_str()) == -1) return Handle();
    return h;
  };
  NbdExport ex;
  ex.uri_ = uri;
  Handle first = create();
  if (!first) throw Error(name + ": cannot create an NBD handle: " + nbd_message(uri), nbd_errno_or(ENOMEM));
  if (nbd_connect_uri(first.get(), uri.c_str()) == -1)
    throw Error(name + ": cannot connect: " + nbd_message(uri), nbd_errno_or(ECONNREFUSED));

  nbd_handle* h = first.get();
  const int read_only = nbd_is_read_only(h);
  const std::int64_t size = nbd_get_size(h);
  if (size < 0) throw Error(name + ": cannot get the export's size: " + nbd_message(uri), nbd_errno_or(EIO));
  ex.read_only_ = read_only == 1;
  if (options.write && ex.read_only_)
    throw Error(name + ": the NBD export is read-only (the server refuses writes to it)", EROFS);
  ex.size_bytes_ = static_cast<std::uint64_t>(size);
  ex.can_zero_ = nbd_can_zero(h) == 1;
  ex.can_flush_ = nbd_can_flush(h) == 1;
  ex.can_multi_conn_ = nbd_can_multi_conn(h) == 1;
  // 0: not advertised.
  const std::int64_t minimum = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
  const std::int64_t preferred = nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED);
  const std::int64_t maximum = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
  ex.min_block_ = minimum > 0 ? static_cast<std::uint32_t>(minimum) : 1;
  ex.preferred_block_ = preferred > 0 ? static_cast<std::uint32_t>(preferred) : 4096;
  std::uint32_t max_request = max_request_default;
  if (maximum > 0) max_request = static_cast<std::uint32_t>(std::min<std::int64_t>(maximum, max_request));
  max_request = max_request / ex.min_block_ * ex.min_block_;
  ex.max_request_ = std::max(max_request, ex.min_block_);
  ex.handles_.push_back(std::move(first));

  // More connections only where the server says they see each other's writes.
  if (ex.can_multi_conn_)
    while (ex.handles_.size() < std::max(options.max_connections, 1u)) {
      Handle more = connect();
      if (!more) break;
      ex.handles_.push_back(std::move(more));
    }
  return ex;
}

// --- NbdBackend ------------------------------------------------------------------

NbdBackend::NbdBackend(std::vector<NbdExport> exports, std::size_t max_requests,
                       std::chrono::milliseconds stall_timeout)
    : stall_timeout_(stall_timeout), slots_(std::max<std::size_t>(max_requests, 1)), exports_(std::move(exports)) {
  free_slots_.reserve(slots_.size());
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
    it->backend = this;
    free_slots_.push_back(&*it);
  }
  done_.reserve(slots_.size());
  fallbacks_.reserve(slots_.size());
  patched_.reserve(slots_.size());
  blocked_.reserve(slots_.size());
  std::uint32_t block = 0;  // the largest minimum block that needs read-modify-writes
  for (const NbdExport& ex : exports_)
    if (ex.min_block_size() > 1) block = std::max(block, ex.min_block_size());
  if (block > 0) {
    bounce_memory_.resize(max_partial_blocks * block);
    bounces_.resize(max_partial_blocks);
    for (std::size_t i = 0; i < bounces_.size(); ++i)
      bounces_[i].data = std::span(bounce_memory_).subspan(i * block, block);
  }
  endpoint_connections_.resize(exports_.size());
  next_connection_.resize(exports_.size());
  for (unsigned e = 0; e < exports_.size(); ++e) {
    can_zero_.push_back(exports_[e].can_zero());
    unsigned medium = 0;
    while (exports_[medium].uri() != exports_[e].uri()) ++medium;
    media_.push_back(medium);
    for (unsigned k = 0; k < exports_[e].handles_.size(); ++k) {
      endpoint_connections_[e].push_back(static_cast<unsigned>(connections_.size()));
      connections_.push_back({exports_[e].handles_[k].get(), e, k, 0, Clock::now(), 0});
    }
  }
  pollfds_.resize(connections_.size());
  polled_.resize(connections_.size());
}

NbdBackend::~NbdBackend() {
  // nbd_close retires commands without calling their completion callbacks:
  // nothing below is touched after this.
  exports_.clear();
}

// The next live connection of `endpoint`, round-robin (or, with
// `first_live`, its first live one), or -1.
int NbdBackend::pick_connection(unsigned endpoint, bool first_live) {
  const std::vector<unsigned>& conns = endpoint_connections_[endpoint];
  for (std::size_t tries = 0; tries < conns.size(); ++tries) {
    const unsigned c = conns[first_live ? tries : next_connection_[endpoint]++ % conns.size()];
    nbd_handle* h = connections_[c].handle;
    if (h != nullptr && (nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1)) fail_connection(c, ECONNRESET);
    if (connections_[c].handle != nullptr) return static_cast<int>(c);
  }
  return -1;
}

// Why `endpoint` has no live connection: the error of the last one closed.
int NbdBackend::connection_error(unsigned endpoint) const {
  int err = ENOTCONN;
  for (const unsigned k : endpoint_connections_[endpoint]) err = connections_[k].error ? connections_[k].error : err;
  return err;
}

void NbdBackend::started_on(Connection& c) {
  if (c.busy++ == 0) c.last_progress = Clock::now();  // the stall clock starts with the first command
}

void NbdBackend::finished_on(Connection& c) {
  if (c.busy > 0) --c.busy;
  c.last_progress = Clock::now();
}

void NbdBackend::complete_now(IoRequest* req, long result) {
  req->result = result;
  done_.push_back(req);
}

// A free slot (there is one for every request that may be in flight).
NbdBackend::Slot* NbdBackend::take_slot() {
  assert(!free_slots_.empty() && "more requests in flight than max_requests");
  Slot* slot = free_slots_.back();
  free_slots_.pop_back();
  return slot;
}

// The slot's request is done with `result`: the slot, its bounce buffer and
// its block (for the next read-modify-write of it) are free again.
void NbdBackend::release(Slot* slot, long result) {
  if (slot->bounce != nullptr) slot->bounce->owner = nullptr;
  slot->bounce = nullptr;
  slot->busy = false;
  free_slots_.push_back(slot);
  --in_flight_;
  complete_now(slot->req, result);
}

void NbdBackend::submit(std::span<IoRequest* const> requests) {
  for (IoRequest* req : requests) start(req, false);
}

// Hands one request to a connection, or completes it at once: empty, past the
// end, no live connection, or refused by libnbd.
void NbdBackend::start(IoRequest* req, bool as_data) {
  const NbdExport& ex = exports_[req->endpoint];
  const std::uint64_t size = ex.size_bytes();
  const std::uint32_t block = ex.min_block_size();
  std::uint64_t length = req->buffer.size();
  if (length == 0) return complete_now(req, 0);
  if (req->offset >= size) return complete_now(req, req->op == IoOp::read ? 0 : -ENOSPC);
  length = std::min(length, size - req->offset);  // the rest comes back short (then 0 or -ENOSPC)
  // Inside one block, or shorter than one (but the export's own last bytes).
  if (!aligned(req->offset, block) || (length < block && req->offset + length < size))
    return start_partial(req, length);
  if (req->offset + length < size) length = length / block * block;  // an unaligned tail comes back short

  const bool zeroing = req->op == IoOp::zero || req->op == IoOp::punch;
  const bool in_place = zeroing && !as_data && can_zero_[req->endpoint] && aligned(length, block);
  const std::uint64_t cap = in_place ? max_zero_request : ex.max_request_bytes();
  if (length > cap) length = cap / block * block;

  const int c = pick_connection(req->endpoint);
  if (c < 0) return complete_now(req, -connection_error(req->endpoint));
  Slot* slot = take_slot();
  *slot = {.backend = this,
           .req = req,
           .connection = static_cast<unsigned>(c),
           .length = static_cast<std::uint32_t>(length),
           .busy = true,
           .written_as_data = zeroing && !in_place};
  Connection& conn = connections_[static_cast<std::size_t>(c)];
  started_on(conn);
  ++in_flight_;

  const nbd_completion_callback done{on_complete, slot, nullptr};
  std::int64_t cookie = -1;
  if (req->op == IoOp::read)
    cookie = nbd_aio_pread(conn.handle, req->buffer.data(), length, req->offset, done, 0);
  else if (in_place)
    cookie = nbd_aio_zero(conn.handle, length, req->offset, done, req->op == IoOp::zero ? LIBNBD_CMD_FLAG_NO_HOLE : 0);
  else
    cookie = nbd_aio_pwrite(conn.handle, req->buffer.data(), length, req->offset, done, 0);
  // -1: refused before it was queued, and the callback is never called (but
  // check: the slot says whether it was).
  if (cookie == -1 && slot->busy) {
    finished_on(conn);
    release(slot, -nbd_errno_or(EIO));
  }
}

// Whether a partial block of `req` may start now: a bounce buffer is free and,
// for a write or zero request, no other read-modify-write has its block.
bool NbdBackend::may_start_partial(const IoRequest& req) const {
  const std::uint32_t block = exports_[req.endpoint].min_block_size();
  const std::uint64_t block_at = req.offset / block * block;
  bool free_bounce = false;
  for (const Bounce& b : bounces_) {
    if (b.owner == nullptr) {
      free_bounce = true;
      continue;
    }
    const IoRequest& other = *b.owner->req;
    if (is_write(req.op) && is_write(other.op) && other.endpoint == req.endpoint && b.owner->block_at == block_at)
      return false;
  }
  return free_bounce;
}

// The part of `req` (`length` bytes, not past the end) in the block that holds
// its first byte: that whole block is read into a bounce buffer; a read then
// copies its part out (on_complete), a write or zero request patches its part
// in, and the block is written (write_patched). Waits in blocked_ while no
// bounce buffer is free or another read-modify-write has the block.
void NbdBackend::start_partial(IoRequest* req, std::uint64_t length) {
  if (!may_start_partial(*req)) {
    ++in_flight_;
    blocked_.push_back(req);
    return;
  }
  const NbdExport& ex = exports_[req->endpoint];
  const std::uint32_t block = ex.min_block_size();
  const std::uint64_t block_at = req->offset / block * block;
  const auto block_length = static_cast<std::uint32_t>(std::min<std::uint64_t>(block, ex.size_bytes() - block_at));
  const auto head = static_cast<std::uint32_t>(req->offset - block_at);
  // Writes go on the first live connection: the next read of the block sees them.
  const int c = pick_connection(req->endpoint, is_write(req->op));
  if (c < 0) return complete_now(req, -connection_error(req->endpoint));
  Bounce* bounce = &*std::find_if(bounces_.begin(), bounces_.end(), [](const Bounce& b) { return !b.owner; });
  Slot* slot = take_slot();
  *slot = {.backend = this,
           .req = req,
           .connection = static_cast<unsigned>(c),
           .length = static_cast<std::uint32_t>(std::min<std::uint64_t>(length, block_length - head)),
           .busy = true,
           .phase = Slot::Phase::block_read,
           .bounce = bounce,
           .block_at = block_at,
           .block_length = block_length,
           .head = head};
  bounce->owner = slot;
  Connection& conn = connections_[static_cast<std::size_t>(c)];
  started_on(conn);
  ++in_flight_;
  if (nbd_aio_pread(conn.handle, bounce->data.data(), block_length, block_at, {on_complete, slot, nullptr}, 0) == -1 &&
      slot->busy) {
    finished_on(conn);
    release(slot, -nbd_errno_or(EIO));
  }
}

// libnbd's completion callback, with the handle's lock held: no nbd_* call here.
int NbdBackend::on_complete(void* user_data, int* error) {
  auto* slot = static_cast<Slot*>(user_data);
  if (!slot->busy) return 1;  // already failed with its connection
  NbdBackend& b = *slot->backend;
  b.finished_on(b.connections_[slot->connection]);
  IoRequest* req = slot->req;
  const int err = *error;
  const long done = err != 0 ? -err : static_cast<long>(slot->length);
  if (slot->phase == Slot::Phase::block_read && err == 0) {
    std::byte* part = slot->bounce->data.data() + slot->head;
    if (req->op == IoOp::read) {
      std::memcpy(req->buffer.data(), part, slot->length);
    } else {
      // Patched (a zero request's buffer holds zeroes), and written from run().
      std::memcpy(part, req->buffer.data(), slot->length);
      slot->phase = Slot::Phase::block_patched;
      b.patched_.push_back(slot);
      return 1;
    }
  }
  const bool zeroed_in_place =
      slot->phase == Slot::Phase::direct && (req->op == IoOp::zero || req->op == IoOp::punch) && !slot->written_as_data;
  if (zeroed_in_place && (err == ENOTSUP || err == EOPNOTSUPP)) {
    // The server cannot zero after all: remembered, and written as data from reap().
    b.can_zero_[req->endpoint] = false;
    slot->phase = Slot::Phase::zero_refused;
    b.fallbacks_.push_back(slot);
    return 1;
  }
  b.release(slot, done);
  return 1;
}

int NbdBackend::on_flushed(void* user_data, int* error) {
  auto* wait = static_cast<FlushWait*>(user_data);
  wait->backend->finished_on(wait->backend->connections_[wait->connection]);
  wait->done = true;
  wait->error = *error;
  return 1;
}

void NbdBackend::restart_fallbacks() {
  while (!fallbacks_.empty()) {
    Slot* slot = fallbacks_.back();
    fallbacks_.pop_back();
    IoRequest* req = slot->req;
    slot->busy = false;
    free_slots_.push_back(slot);
    --in_flight_;
    start(req, true);
  }
}

// The partial blocks patched since the last round are written whole, on the
// first live connection (libnbd calls are not allowed in the callback).
void NbdBackend::write_patched() {
  while (!patched_.empty()) {
    Slot* slot = patched_.back();
    patched_.pop_back();
    const unsigned endpoint = slot->req->endpoint;
    const int c = pick_connection(endpoint, true);
    if (c < 0) {
      release(slot, -connection_error(endpoint));
      continue;
    }
    slot->connection = static_cast<unsigned>(c);
    slot->phase = Slot::Phase::block_write;
    Connection& conn = connections_[static_cast<std::size_t>(c)];
    started_on(conn);
    if (nbd_aio_pwrite(conn.handle, slot->bounce->data.data(), slot->block_length, slot->block_at,
                       {on_complete, slot, nullptr}, 0) == -1 &&
        slot->busy) {
      finished_on(conn);
      release(slot, -nbd_errno_or(EIO));
    }
  }
}

// Partial blocks that waited start, in order, once their bounce buffer and block are free.
void NbdBackend::start_blocked() {
  std::size_t kept = 0;
  const std::size_t n = blocked_.size();
  for (std::size_t i = 0; i < n; ++i) {
    IoRequest* req = blocked_[i];
    if (!may_start_partial(*req)) {
      blocked_[kept++] = req;
      continue;
    }
    --in_flight_;
    start(req, false);  // starts: it blocks no more
  }
  assert(blocked_.size() == n);
  blocked_.resize(kept);
}

// Closes a connection and fails whatever is still in flight on it: closing
// first, so that libnbd calls no callback for these afterwards.
void NbdBackend::fail_connection(unsigned connection, int error) {
  Connection& c = connections_[connection];
  if (c.handle == nullptr) return;
  exports_[c.endpoint].handles_[c.index].reset();
  c.handle = nullptr;
  c.error = error;
  c.busy = 0;
  for (Slot& slot : slots_) {
    const bool queued = slot.phase == Slot::Phase::zero_refused || slot.phase == Slot::Phase::block_patched;
    if (!slot.busy || queued || slot.connection != connection) continue;
    release(&slot, -error);
  }
  // A refused zero waiting in fallbacks_, or a patched block in patched_, is
  // sent on another connection, or fails there.
}

// One round of the connections' state machines: waits up to `timeout_ms` (-1:
// until the earliest stall deadline) for a busy connection's socket, tells
// libnbd what is ready, and fails connections that died or stalled.
void NbdBackend::run(int timeout_ms) {
  restart_fallbacks();
  write_patched();
  start_blocked();
  std::size_t n = 0;
  for (unsigned k = 0; k < connections_.size(); ++k) {
    Connection& c = connections_[k];
    if (c.handle == nullptr || c.busy == 0) continue;
    if (nbd_aio_is_dead(c.handle) == 1 || nbd_aio_is_closed(c.handle) == 1) {
      fail_connection(k, ECONNRESET);
      continue;
    }
    const int fd = nbd_aio_get_fd(c.handle);
    const unsigned dir = nbd_aio_get_direction(c.handle);
    if (fd < 0) {
      fail_connection(k, ECONNRESET);
      continue;
    }
    short events = 0;
    if (dir & LIBNBD_AIO_DIRECTION_READ) events |= POLLIN;
    if (dir & LIBNBD_AIO_DIRECTION_WRITE) events |= POLLOUT;
    pollfds_[n] = {fd, events, 0};
    polled_[n++] = k;
  }
  if (n == 0) return;
  const int deadline = poll_timeout_ms();
  if (timeout_ms < 0 || (deadline >= 0 && deadline < timeout_ms)) timeout_ms = deadline;
  const int ready = ::poll(pollfds_.data(), n, timeout_ms);
  if (ready > 0) {
    for (std::size_t i = 0; i < n; ++i) {
      const short rev = pollfds_[i].revents;
      if (rev == 0) continue;
      Connection& c = connections_[polled_[i]];
      if (c.handle == nullptr) continue;
      c.last_progress = Clock::now();
      // As nbdcopy: a hang-up or error is read, so that libnbd sees the end.
      if (rev & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
        nbd_aio_notify_read(c.handle);
      else if (rev & POLLOUT)
        nbd_aio_notify_write(c.handle);
    }
  }
  // A signal (EINTR) or a timeout: the caller loops; deadlines are checked here.
  const auto now = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    Connection& c = connections_[polled_[i]];
    if (c.handle == nullptr) continue;
    if (nbd_aio_is_dead(c.handle) == 1 || nbd_aio_is_closed(c.handle) == 1)
      fail_connection(polled_[i], ECONNRESET);
    else if (c.busy > 0 && now - c.last_progress >= stall_timeout_)
      fail_connection(polled_[i], ETIMEDOUT);
  }
}

std::size_t NbdBackend::take_done(std::span<IoRequest*> out, std::size_t n) {
  while (!done_.empty() && n < out.size()) {
    out[n++] = done_.back();
    done_.pop_back();
  }
  return n;
}

std::size_t NbdBackend::reap(std::span<IoRequest*> out, std::size_t min_completions) {
  std::size_t n = take_done(out, 0);
  if (n == out.size()) return n;
  run(0);  // never waits: moves every connection on as far as it goes
  n = take_done(out, n);
  while (n < min_completions && n < out.size() && (in_flight_ > 0 || !done_.empty())) {
    run(-1);
    n = take_done(out, n);
  }
  return n;
}

int NbdBackend::flush(unsigned endpoint) {
  if (!exports_[endpoint].can_flush()) return 0;
  int result = 0;
  bool any = false;
  for (const unsigned k : endpoint_connections_[endpoint]) {
    Connection& c = connections_[k];
    if (c.handle == nullptr) continue;
    any = true;
    FlushWait wait{this, k, false, 0};
    started_on(c);
    if (nbd_aio_flush(c.handle, {on_flushed, &wait, nullptr}, 0) == -1) {
      if (!wait.done) {
        finished_on(c);
        result = -nbd_errno_or(EIO);
      }
      continue;
    }
    // Other requests complete meanwhile: reap() hands them back later.
    while (!wait.done && c.handle != nullptr) run(-1);
    if (!wait.done)
      result = -c.error;
    else if (wait.error != 0)
      result = -wait.error;
  }
  if (!any) {
    int err = ENOTCONN;
    for (const unsigned k : endpoint_connections_[endpoint]) err = connections_[k].error ? connections_[k].error : err;
    return -err;
  }
  return result;
}

int NbdBackend::poll_fds(std::span<pollfd> out) {
  int n = 0;
  for (const Connection& c : connections_) {
    if (c.handle == nullptr || c.busy == 0) continue;
    const int fd = nbd_aio_get_fd(c.handle);
    if (fd < 0) continue;  // dead: poll_timeout_ms() is 0, reap() fails it
    if (static_cast<std::size_t>(n) == out.size()) return -ENOSPC;
    const unsigned dir = nbd_aio_get_direction(c.handle);
    short events = 0;
    if (dir & LIBNBD_AIO_DIRECTION_READ) events |= POLLIN;
    if (dir & LIBNBD_AIO_DIRECTION_WRITE) events |= POLLOUT;
    out[static_cast<std::size_t>(n++)] = {fd, events, 0};
  }
  return n;
}

int NbdBackend::poll_timeout_ms() const {
  if (!done_.empty() || !fallbacks_.empty() || !patched_.empty()) return 0;
  for (const IoRequest* req : blocked_)
    if (may_start_partial(*req)) return 0;
  const auto now = Clock::now();
  std::chrono::milliseconds earliest = std::chrono::milliseconds::max();
  for (const Connection& c : connections_) {
    if (c.handle == nullptr || c.busy == 0) continue;
    if (nbd_aio_is_dead(c.handle) == 1 || nbd_aio_is_closed(c.handle) == 1) return 0;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(c.last_progress + stall_timeout_ - now);
    earliest = std::min(earliest, std::max(left, std::chrono::milliseconds(0)));
  }
  if (earliest == std::chrono::milliseconds::max()) return -1;
  return static_cast<int>(std::min<std::chrono::milliseconds::rep>(earliest.count(), std::numeric_limits<int>::max()));
}

}  // namespace kcopy
