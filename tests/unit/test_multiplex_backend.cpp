// One backend over a local file (io_uring, libaio or sync) and NBD exports
// (nbdkit on a Unix socket in a temporary directory), as a copy between a
// disk and a remote one sees it. NBD cases are skipped (with a warning) where
// nbdkit is not installed; io_uring ones where io_uring cannot be set up.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backend_harness.hpp"
#include "kcopy/aio_backend.hpp"
#include "kcopy/error.hpp"
#include "kcopy/multiplex_backend.hpp"
#include "kcopy/nbd_backend.hpp"
#include "kcopy/sync_backend.hpp"
#include "kcopy/uring_backend.hpp"
#include "nbdkit_server.hpp"

using namespace kcopy;
using kcopy::test::each_once;
using kcopy::test::endpoint;
using kcopy::test::Nbdkit;
using kcopy::test::reap_all;
using kcopy::test::TempFile;
using Clock = std::chrono::steady_clock;

namespace {

enum class Local { uring, aio, sync };

const char* name_of(Local kind) {
  switch (kind) {
    case Local::uring:
      return "io_uring";
    case Local::aio:
      return "libaio";
    case Local::sync:
      return "sync";
  }
  return "?";
}

// The local child, or nothing (and a warning) where io_uring cannot be had.
std::unique_ptr<IoBackend> local_backend(Local kind, std::vector<FdEndpoint> eps, std::size_t max_requests) {
  switch (kind) {
    case Local::uring:
      try {
        return std::make_unique<UringBackend>(std::move(eps), max_requests);
      } catch (const Error& e) {
        WARN("io_uring unavailable, test skipped: " << e.what());
        return nullptr;
      }
    case Local::aio:
      return std::make_unique<AioBackend>(std::move(eps), max_requests);
    case Local::sync:
      return std::make_unique<SyncBackend>(std::move(eps), max_requests);
  }
  return nullptr;
}

std::unique_ptr<NbdBackend> nbd_backend(const std::vector<std::string>& uris, std::size_t max_requests,
                                        std::chrono::milliseconds stall = NbdBackend::default_stall_timeout) {
  std::vector<NbdExport> exports;
  for (const std::string& uri : uris) exports.push_back(NbdExport::open(uri, "destination", {true, 2}));
  return std::make_unique<NbdBackend>(std::move(exports), max_requests, stall);
}

// Page-aligned memory for O_DIRECT.
struct AlignedBuffer {
  std::byte* data;
  std::size_t size;
  explicit AlignedBuffer(std::size_t bytes)
      : data(static_cast<std::byte*>(std::aligned_alloc(4096, bytes))), size(bytes) {
    std::fill_n(data, size, std::byte{0});
  }
  ~AlignedBuffer() { std::free(data); }
  std::span<std::byte> span() { return {data, size}; }
};

using Route = MultiplexBackend::Route;

}  // namespace

TEST_CASE("requests to a local file and to NBD exports through one backend each come back once, as submitted") {
  const Local kind = GENERATE(Local::uring, Local::aio, Local::sync);
  INFO(name_of(kind));
  auto a = Nbdkit::start({"memory", "4M"});
  if (!a) return;
  auto b = Nbdkit::start({"memory", "4M"});
  constexpr std::size_t size = 1 << 20, piece = 64 * 1024, pieces = size / piece;
  TempFile file(size);
  auto local = local_backend(kind, {endpoint(file.direct_fd, file.fd, 4096)}, 64);
  if (!local) return;
  std::vector<std::unique_ptr<IoBackend>> children;
  children.push_back(std::move(local));
  children.push_back(nbd_backend({a->uri(), b->uri()}, 64));
  // Endpoint 0: NBD export a; 1: the file; 2: NBD export b.
  MultiplexBackend mux(std::move(children), {Route{1, 0, {0, 0}}, Route{0, 0, {1, 0}}, Route{1, 1, {2, 0}}}, 64);

  // Read the file piece by piece, and write each piece to both exports, all in flight at once.
  AlignedBuffer buf(size);
  std::vector<IoRequest> reads;
  for (std::size_t i = 0; i < pieces; ++i)
    reads.push_back(IoRequest::make_read(1, buf.span().subspan(i * piece, piece), i * piece, nullptr));
  std::vector<IoRequest*> ptrs;
  for (IoRequest& r : reads) ptrs.push_back(&r);
  REQUIRE(each_once(reap_all(mux, ptrs)));
  for (const IoRequest& r : reads) {
    CHECK(r.result == static_cast<long>(piece));
    CHECK(r.endpoint == 1);  // as submitted, not the child's index
  }
  std::vector<IoRequest> writes;
  for (std::size_t i = 0; i < pieces; ++i)
    for (unsigned ep : {0u, 2u})
      writes.push_back(IoRequest::make_write(ep, buf.span().subspan(i * piece, piece), i * piece + 4096, nullptr));
  ptrs.clear();
  for (IoRequest& w : writes) ptrs.push_back(&w);
  REQUIRE(each_once(reap_all(mux, ptrs)));
  for (std::size_t i = 0; i < writes.size(); ++i) {
    CHECK(writes[i].result == static_cast<long>(piece));
    CHECK(writes[i].endpoint == (i % 2 ? 2u : 0u));
  }
  CHECK(mux.flush(0) == 0);
  CHECK(mux.flush(1) == 0);
  CHECK(mux.flush(2) == 0);

  // Both exports now hold the file at byte 4096.
  AlignedBuffer back_a(size), back_b(size);
  std::vector<IoRequest> mixed = {IoRequest::make_read(0, back_a.span(), 4096, nullptr),
                                  IoRequest::make_read(2, back_b.span(), 4096, nullptr)};
  ptrs = {&mixed[0], &mixed[1]};
  REQUIRE(each_once(reap_all(mux, ptrs)));
  CHECK(mixed[0].result == static_cast<long>(size));
  CHECK(mixed[1].result == static_cast<long>(size));
  const std::string expect = file.contents();
  CHECK(std::equal(expect.begin(), expect.end(), reinterpret_cast<const char*>(back_a.data)));
  CHECK(std::equal(expect.begin(), expect.end(), reinterpret_cast<const char*>(back_b.data)));
}

TEST_CASE("a slow NBD server does not hold back local completions") {
  const Local kind = GENERATE(Local::uring, Local::aio, Local::sync);
  INFO(name_of(kind));
  // Every NBD read takes 2 s on the server.
  auto slow = Nbdkit::start({"--filter=delay", "memory", "4M", "delay-read=2"});
  if (!slow) return;
  TempFile file(1 << 20);
  auto local = local_backend(kind, {endpoint(file.direct_fd, file.fd, 4096)}, 8);
  if (!local) return;
  std::vector<std::unique_ptr<IoBackend>> children;
  children.push_back(std::move(local));
  children.push_back(nbd_backend({slow->uri()}, 8));
  MultiplexBackend mux(std::move(children), {Route{0, 0, {0, 0}}, Route{1, 0, {1, 0}}}, 8);

  AlignedBuffer local_buf(65536), remote_buf(65536);
  IoRequest remote = IoRequest::make_read(1, remote_buf.span(), 0, nullptr);
  IoRequest near = IoRequest::make_read(0, local_buf.span(), 65536, nullptr);
  IoRequest* batch[] = {&remote, &near};
  const auto start = Clock::now();
  mux.submit(batch);
  std::vector<IoRequest*> out(4);
  REQUIRE(mux.reap(out, 1) == 1);  // the local one, woken by its eventfd, not by the NBD socket
  CHECK(out[0] == &near);
  CHECK(near.result == 65536);
  CHECK(Clock::now() - start < std::chrono::seconds(1));  // the slow read takes 2 s
  REQUIRE(mux.reap(out, 1) == 1);
  CHECK(out[0] == &remote);
  CHECK(remote.result == 65536);
  CHECK(remote.endpoint == 1);
  CHECK(mux.reap(out, 1) == 0);  // nothing in flight
}

TEST_CASE("a killed NBD server fails its requests while the local ones succeed") {
  const Local kind = GENERATE(Local::uring, Local::aio, Local::sync);
  INFO(name_of(kind));
  auto server = Nbdkit::start({"--filter=delay", "memory", "4M", "delay-read=3"});
  if (!server) return;
  TempFile file(1 << 20);
  auto local = local_backend(kind, {endpoint(file.direct_fd, file.fd, 4096)}, 16);
  if (!local) return;
  std::vector<std::unique_ptr<IoBackend>> children;
  children.push_back(std::move(local));
  children.push_back(nbd_backend({server->uri()}, 16));
  MultiplexBackend mux(std::move(children), {Route{0, 0, {0, 0}}, Route{1, 0, {1, 0}}}, 16);

  std::vector<std::unique_ptr<AlignedBuffer>> bufs;
  std::vector<IoRequest> reqs;
  for (unsigned i = 0; i < 8; ++i) {
    bufs.push_back(std::make_unique<AlignedBuffer>(4096));
    reqs.push_back(IoRequest::make_read(i % 2, bufs.back()->span(), i * 4096, nullptr));
  }
  std::vector<IoRequest*> ptrs;
  for (IoRequest& r : reqs) ptrs.push_back(&r);
  std::thread killer([&server] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    server->kill();
  });
  const auto start = Clock::now();
  const auto times = reap_all(mux, ptrs, 3);
  killer.join();
  CHECK(each_once(times));
  CHECK(Clock::now() - start < std::chrono::seconds(3));
  for (const IoRequest& r : reqs) {
    INFO("endpoint " << r.endpoint << " at " << r.offset);
    if (r.endpoint == 0)
      CHECK(r.result == 4096);
    else
      CHECK(r.result < 0);
  }
}

TEST_CASE("endpoints of different children are never one medium; a child's own media are kept") {
  auto server = Nbdkit::start({"memory", "1M"});
  if (!server) return;
  TempFile file(4096);
  FdEndpoint whole = endpoint(file.fd, file.fd, 1), part = endpoint(file.fd, file.fd, 1);
  whole.placement = {0, 0};
  part.placement = {0, 1024};  // the same file, at byte 1024 (as a loop device with an offset)
  std::vector<std::unique_ptr<IoBackend>> children;
  children.push_back(std::make_unique<SyncBackend>(std::vector<FdEndpoint>{whole, part}, 4));
  children.push_back(nbd_backend({server->uri(), server->uri()}, 4));
  // The caller's placements, over every child: one URI is one export, the file and its part one medium.
  MultiplexBackend mux(
      std::move(children),
      {Route{1, 0, {7, 0}}, Route{0, 0, whole.placement}, Route{0, 1, part.placement}, Route{1, 1, {7, 0}}}, 4);
  CHECK(mux.placement(1).medium == mux.placement(2).medium);
  CHECK(mux.placement(2).offset == 1024);
  CHECK(mux.placement(0).medium == mux.placement(3).medium);
  CHECK(mux.placement(0).medium != mux.placement(1).medium);
  CHECK(mux.alignment(0) == 1);
}

TEST_CASE("an endpoint added later goes to the child that takes files, at the next index") {
  auto server = Nbdkit::start({"memory", "1M"});
  if (!server) return;
  TempFile first(8192), later(8192);
  std::vector<std::unique_ptr<IoBackend>> children;
  children.push_back(nbd_backend({server->uri()}, 4));  // takes no file endpoints: skipped
  children.push_back(std::make_unique<SyncBackend>(std::vector<FdEndpoint>{endpoint(first.fd, first.fd, 1)}, 4));
  MultiplexBackend mux(std::move(children), {Route{0, 0, {0, 0}}, Route{1, 0, {1, 0}}}, 4);
  REQUIRE(mux.add_endpoint(endpoint(later.fd, later.fd, 1)) == 2);
  CHECK(mux.route(2).child == 1);
  CHECK(mux.route(2).endpoint == 1);
  std::vector<std::byte> buf(100);
  IoRequest r = IoRequest::make_read(2, buf, 300, nullptr);
  REQUIRE(each_once(reap_all(mux, {&r})));
  CHECK(r.result == 100);
  CHECK(r.endpoint == 2);
  CHECK(std::to_integer<int>(buf[0]) == 300 % 251);
}
