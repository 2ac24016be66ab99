// The NBD backend against real NBD servers: nbdkit, started by each test on a
// Unix socket in a temporary directory (nothing leaves the machine), with
// filters for errors, delays and block sizes, and killed mid-transfer. Skipped
// (with a warning) where nbdkit is not installed.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backend_harness.hpp"
#include "kcopy/error.hpp"
#include "kcopy/nbd_backend.hpp"
#include "nbdkit_server.hpp"

using namespace kcopy;
using kcopy::test::each_once;
using kcopy::test::Nbdkit;
using kcopy::test::reap_all;
using Clock = std::chrono::steady_clock;

namespace {

std::unique_ptr<NbdBackend> backend_for(const std::vector<std::string>& uris, bool write, std::size_t max_requests,
                                        std::chrono::milliseconds stall = NbdBackend::default_stall_timeout,
                                        unsigned connections = 4) {
  std::vector<NbdExport> exports;
  for (const std::string& uri : uris) exports.push_back(NbdExport::open(uri, "destination", {write, connections}));
  return std::make_unique<NbdBackend>(std::move(exports), max_requests, stall);
}

std::vector<std::byte> pattern(std::size_t size, unsigned seed) {
  std::vector<std::byte> v(size);
  for (std::size_t i = 0; i < size; ++i) v[i] = static_cast<std::byte>((i * 7 + seed) % 253);
  return v;
}

}  // namespace

TEST_CASE("what is written to an NBD export at any offset reads back byte for byte, over every connection") {
  auto server = Nbdkit::start({"memory", "64M"});
  if (!server) return;
  auto b = backend_for({server->uri()}, true, 64);
  REQUIRE(b->nbd_export(0).connections() == 4);  // nbdkit's memory plugin allows multi-conn

  // Aligned and unaligned pieces, some adjacent, 32 at once: every connection gets some.
  struct Piece {
    std::uint64_t offset;
    std::size_t size;
  };
  std::vector<Piece> pieces;
  for (unsigned i = 0; i < 24; ++i) pieces.push_back({i * std::uint64_t{1 << 20}, 64 * 1024});
  pieces.push_back({(50u << 20) + 12345, 1000});
  pieces.push_back({(64u << 20) - 512, 512});  // the last sector
  pieces.push_back({30u << 20 | 7, 3 << 20});  // 3 MiB at an odd offset
  std::vector<std::vector<std::byte>> data;
  std::vector<IoRequest> writes;
  for (std::size_t i = 0; i < pieces.size(); ++i) data.push_back(pattern(pieces[i].size, static_cast<unsigned>(i)));
  for (std::size_t i = 0; i < pieces.size(); ++i)
    writes.push_back(IoRequest::make_write(0, data[i], pieces[i].offset, nullptr));
  std::vector<IoRequest*> ptrs;
  for (IoRequest& w : writes) ptrs.push_back(&w);
  REQUIRE(each_once(reap_all(*b, ptrs)));
  for (std::size_t i = 0; i < writes.size(); ++i) CHECK(writes[i].result == static_cast<long>(pieces[i].size));
  REQUIRE(b->flush(0) == 0);

  // Read back on fresh connections (another backend: nothing cached here).
  auto reader = backend_for({server->uri()}, false, 64);
  std::vector<std::vector<std::byte>> back;
  std::vector<IoRequest> reads;
  for (const Piece& p : pieces) back.emplace_back(p.size);
  for (std::size_t i = 0; i < pieces.size(); ++i)
    reads.push_back(IoRequest::make_read(0, back[i], pieces[i].offset, nullptr));
  ptrs.clear();
  for (IoRequest& r : reads) ptrs.push_back(&r);
  REQUIRE(each_once(reap_all(*reader, ptrs)));
  for (std::size_t i = 0; i < reads.size(); ++i) {
    INFO("piece " << i);
    CHECK(reads[i].result == static_cast<long>(pieces[i].size));
    CHECK(std::equal(back[i].begin(), back[i].end(), data[i].begin(), data[i].end()));
  }
}

TEST_CASE("an NBD export reports its size, block sizes and connections as the server advertises them") {
  auto server = Nbdkit::start({"--filter=blocksize-policy", "memory", "8M", "blocksize-minimum=4096",
                               "blocksize-preferred=65536", "blocksize-maximum=1M"});
  if (!server) return;
  auto b = backend_for({server->uri()}, false, 4, NbdBackend::default_stall_timeout, 2);
  const NbdExport& ex = b->nbd_export(0);
  CHECK(ex.size_bytes() == 8u << 20);
  CHECK(ex.min_block_size() == 4096);
  CHECK(ex.preferred_block_size() == 65536);
  CHECK(ex.max_request_bytes() == 1u << 20);
  CHECK(b->alignment(0) == 4096);
  CHECK_FALSE(ex.read_only());
  CHECK(ex.can_zero());
  CHECK(ex.connections() == 2);

  auto plain = Nbdkit::start({"memory", "1M"});
  auto p = backend_for({plain->uri()}, false, 4, NbdBackend::default_stall_timeout, 1);
  CHECK(p->alignment(0) == 1);  // no minimum advertised
  CHECK(p->nbd_export(0).max_request_bytes() == 32u << 20);
  CHECK(p->nbd_export(0).connections() == 1);
}

TEST_CASE("opening a read-only NBD export for writing is refused, naming it without its secrets") {
  auto server = Nbdkit::start({"-r", "memory", "1M"});
  if (!server) return;
  CHECK_NOTHROW(NbdExport::open(server->uri(), "source", {false, 1}));
  try {
    NbdExport::open(server->uri(), "destination 2", {true, 1});
    FAIL("opened for writing");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::StartsWith("destination 2 'nbd+unix:///?socket="));
    CHECK_THAT(e.what(), Catch::Contains("read-only"));
    CHECK(e.error_number() == EROFS);
  }
  CHECK(NbdExport::open(server->uri(), "source", {false, 1}).read_only());
}

TEST_CASE("a connection that fails is reported with the URI redacted") {
  const std::string uri = "nbd+unix://alice:hunter2@/disk?socket=/nonexistent/kcopy.sock&tls-psk-file=/k/key.psk";
  try {
    NbdExport::open(uri, "source", {false, 1});
    FAIL("connected");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK_THAT(e.what(), Catch::StartsWith("source 'nbd+unix://alice:"));
    CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
    CHECK(std::string(e.what()).find("key.psk") == std::string::npos);
  }
}

TEST_CASE("NBD reads longer than the server's maximum come back short; past the end, short or empty") {
  auto server = Nbdkit::start({"--filter=blocksize-policy", "memory", "1M", "blocksize-maximum=64K"});
  if (!server) return;
  auto b = backend_for({server->uri()}, true, 8);
  std::vector<std::byte> big(256 * 1024), tail(8192), beyond(512), wbeyond(4096);
  IoRequest r1 = IoRequest::make_read(0, big, 0, nullptr);
  IoRequest r2 = IoRequest::make_read(0, tail, (1u << 20) - 4096, nullptr);
  IoRequest r3 = IoRequest::make_read(0, beyond, 1u << 20, nullptr);
  IoRequest w1 = IoRequest::make_write(0, wbeyond, (1u << 20) - 1024, nullptr);
  IoRequest w2 = IoRequest::make_write(0, wbeyond, 1u << 20, nullptr);
  REQUIRE(each_once(reap_all(*b, {&r1, &r2, &r3, &w1, &w2})));
  CHECK(r1.result == 64 * 1024);
  CHECK(r2.result == 4096);
  CHECK(r3.result == 0);
  CHECK(w1.result == 1024);
  CHECK(w2.result == -ENOSPC);
}

TEST_CASE("an NBD server's error fails exactly the requests it refused, with its errno") {
  // Writes fail only while the trigger file exists.
  const std::string trigger = "/tmp/kcopy-nbd-fail-writes-" + std::to_string(::getpid());
  auto server = Nbdkit::start({"--filter=error", "memory", "1M", "error-pwrite=ENOSPC", "error-pwrite-rate=100%",
                               "error-pwrite-file=" + trigger});
  if (!server) return;
  auto b = backend_for({server->uri()}, true, 16);
  std::vector<std::vector<std::byte>> bufs;
  for (int i = 0; i < 8; ++i) bufs.push_back(pattern(4096, static_cast<unsigned>(i)));
  auto batch = [&](std::vector<IoRequest>& reqs) {
    reqs.clear();
    for (int i = 0; i < 8; ++i)
      reqs.push_back(i % 2 ? IoRequest::make_write(0, bufs[i], i * 4096u, nullptr)
                           : IoRequest::make_read(0, bufs[i], i * 4096u, nullptr));
    std::vector<IoRequest*> ptrs;
    for (IoRequest& r : reqs) ptrs.push_back(&r);
    REQUIRE(each_once(reap_all(*b, ptrs)));
  };
  std::vector<IoRequest> reqs;
  {
    std::FILE* f = std::fopen(trigger.c_str(), "w");
    REQUIRE(f);
    std::fclose(f);
  }
  batch(reqs);
  for (int i = 0; i < 8; ++i) CHECK(reqs[i].result == (i % 2 ? -ENOSPC : 4096));
  ::unlink(trigger.c_str());
  batch(reqs);
  for (int i = 0; i < 8; ++i) CHECK(reqs[i].result == 4096);
  // The default error is EIO, for every write.
  auto eio = Nbdkit::start({"--filter=error", "memory", "1M", "error-pwrite-rate=100%"});
  auto e = backend_for({eio->uri()}, true, 4);
  IoRequest w = IoRequest::make_write(0, bufs[0], 0, nullptr);
  REQUIRE(each_once(reap_all(*e, {&w})));
  CHECK(w.result == -EIO);
}

TEST_CASE("zeroing an NBD range reads back as zeroes, with or without write-zeroes on the server") {
  const bool server_zeroes = GENERATE(true, false);
  auto server = server_zeroes ? Nbdkit::start({"memory", "4M"}) : Nbdkit::start({"--filter=nozero", "memory", "4M"});
  if (!server) return;
  auto b = backend_for({server->uri()}, true, 8);
  CHECK(b->nbd_export(0).can_zero() == server_zeroes);
  auto data = pattern(1 << 20, 3);
  IoRequest w = IoRequest::make_write(0, data, 0, nullptr);
  REQUIRE(each_once(reap_all(*b, {&w})));
  std::vector<std::byte> zeroes(256 * 1024);
  IoRequest z = IoRequest::make_zero(0, zeroes, 4096, nullptr);
  IoRequest p = IoRequest::make_punch(0, std::span(zeroes).first(1000), 512 * 1024 + 3, nullptr);  // unaligned
  REQUIRE(each_once(reap_all(*b, {&z, &p})));
  CHECK(z.result == 256 * 1024);
  CHECK(p.result == 1000);
  std::vector<std::byte> back(1 << 20);
  IoRequest r = IoRequest::make_read(0, back, 0, nullptr);
  REQUIRE(each_once(reap_all(*b, {&r})));
  auto expect = data;
  std::fill_n(expect.begin() + 4096, 256 * 1024, std::byte{0});
  std::fill_n(expect.begin() + 512 * 1024 + 3, 1000, std::byte{0});
  CHECK(std::equal(back.begin(), back.end(), expect.begin(), expect.end()));
}

TEST_CASE("killing the NBD server fails every request in flight within seconds, and later ones at once") {
  // Reads take 3 s on the server: all are in flight when it dies.
  auto server = Nbdkit::start({"--filter=delay", "memory", "4M", "delay-read=3"});
  if (!server) return;
  auto b = backend_for({server->uri()}, true, 16);
  std::vector<std::vector<std::byte>> bufs(12, std::vector<std::byte>(4096));
  std::vector<IoRequest> reqs;
  for (std::size_t i = 0; i < bufs.size(); ++i)
    reqs.push_back(i % 3 == 2 ? IoRequest::make_write(0, bufs[i], i * 4096, nullptr)
                              : IoRequest::make_read(0, bufs[i], i * 4096, nullptr));
  std::vector<IoRequest*> ptrs;
  for (IoRequest& r : reqs) ptrs.push_back(&r);
  b->submit(ptrs);
  std::vector<IoRequest*> out(16);
  std::size_t got = b->reap(out, 0);
  CHECK(got <= 4);  // the writes may be done; the reads are not
  const auto start = Clock::now();
  std::thread killer([&server] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    server->kill();
  });
  for (std::size_t n; (n = b->reap(out, 1)) > 0;) got += n;
  killer.join();
  CHECK(got == reqs.size());  // each once: reap returns 0 only when nothing is in flight
  CHECK(Clock::now() - start < std::chrono::seconds(3));
  std::size_t failed = 0;
  for (const IoRequest& r : reqs) failed += r.op == IoOp::read && r.result < 0;
  CHECK(failed == 8);  // every read
  for (const IoRequest& r : reqs)
    if (r.op == IoOp::read)
      CHECK((r.result == -ECONNRESET || r.result == -ENOTCONN || r.result == -EIO || r.result == -ESHUTDOWN ||
             r.result == -EPIPE));

  // The export is gone: new requests and flushes fail without waiting.
  const auto later = Clock::now();
  IoRequest again = IoRequest::make_read(0, bufs[0], 0, nullptr);
  REQUIRE(each_once(reap_all(*b, {&again})));
  CHECK(again.result < 0);
  CHECK(b->flush(0) < 0);
  CHECK(Clock::now() - later < std::chrono::seconds(1));
}

TEST_CASE("an NBD server that stops answering fails its requests with ETIMEDOUT after the stall timeout") {
  auto server = Nbdkit::start({"--filter=delay", "memory", "4M", "delay-read=60"});
  if (!server) return;
  auto b = backend_for({server->uri()}, false, 8, std::chrono::milliseconds(500), 2);
  std::vector<std::vector<std::byte>> bufs(6, std::vector<std::byte>(4096));
  std::vector<IoRequest> reqs;
  for (std::size_t i = 0; i < bufs.size(); ++i) reqs.push_back(IoRequest::make_read(0, bufs[i], i * 4096, nullptr));
  std::vector<IoRequest*> ptrs;
  for (IoRequest& r : reqs) ptrs.push_back(&r);
  const auto start = Clock::now();
  REQUIRE(each_once(reap_all(*b, ptrs)));
  const auto took = Clock::now() - start;
  CHECK(took >= std::chrono::milliseconds(450));
  CHECK(took < std::chrono::seconds(5));
  for (const IoRequest& r : reqs) CHECK(r.result == -ETIMEDOUT);
  CHECK(b->poll_timeout_ms() == -1);  // nothing in flight any more
}

TEST_CASE("endpoints of one NBD URI are one medium; of different URIs, different media") {
  auto one = Nbdkit::start({"memory", "1M"});
  if (!one) return;
  auto two = Nbdkit::start({"memory", "1M"});
  auto b = backend_for({one->uri(), two->uri(), one->uri()}, false, 4, NbdBackend::default_stall_timeout, 1);
  CHECK(b->placement(0).medium == 0);
  CHECK(b->placement(1).medium == 1);
  CHECK(b->placement(2).medium == 0);
  CHECK(b->placement(2).offset == 0);
}

namespace {

// Submits `reqs` and continues each short completion with its rest, as the
// engine does, until every request is done or failed. Returns how many times
// each came back done or failed; its result is then its total, or its -errno.
std::vector<int> transfer_all(IoBackend& b, std::vector<IoRequest*> reqs) {
  struct Whole {
    std::span<std::byte> buffer;
    std::uint64_t offset;
    long done = 0;
  };
  std::vector<Whole> whole;
  for (IoRequest* r : reqs) whole.push_back({r->buffer, r->offset});
  std::vector<int> times(reqs.size());
  b.submit(reqs);
  std::vector<IoRequest*> out(16);
  for (;;) {
    const std::size_t n = b.reap(out, 1);
    if (n == 0) break;
    for (std::size_t k = 0; k < n; ++k) {
      const auto i = static_cast<std::size_t>(std::find(reqs.begin(), reqs.end(), out[k]) - reqs.begin());
      IoRequest& r = *reqs.at(i);
      if (r.result > 0 && static_cast<std::size_t>(r.result) < r.buffer.size()) {
        whole[i].done += r.result;
        r.buffer = whole[i].buffer.subspan(static_cast<std::size_t>(whole[i].done));
        r.offset = whole[i].offset + static_cast<std::uint64_t>(whole[i].done);
        IoRequest* again[] = {&r};
        b.submit(again);
        continue;
      }
      r.result = r.result < 0 ? r.result : whole[i].done + r.result;
      r.buffer = whole[i].buffer;
      r.offset = whole[i].offset;
      ++times[i];
    }
  }
  return times;
}

}  // namespace

TEST_CASE("unaligned ranges on an NBD export with a 4096-byte minimum block are read-modify-written, none lost") {
  auto server = Nbdkit::start(
      {"--filter=blocksize-policy", "memory", "8M", "blocksize-minimum=4096", "blocksize-error-policy=error"});
  if (!server) return;
  auto b = backend_for({server->uri()}, true, 128);
  REQUIRE(b->alignment(0) == 4096);
  constexpr std::size_t total = 1 << 20;
  auto model = pattern(total, 1);
  IoRequest base = IoRequest::make_write(0, model, 0, nullptr);
  REQUIRE(each_once(reap_all(*b, {&base})));
  REQUIRE(base.result == static_cast<long>(total));

  SECTION("an unaligned request comes back short at the end of its first block, an aligned one before its tail") {
    std::vector<std::byte> a(10000), b2(10000), c(512);
    IoRequest head = IoRequest::make_read(0, a, 1000, nullptr);
    IoRequest tail = IoRequest::make_read(0, b2, 8192, nullptr);
    IoRequest small = IoRequest::make_read(0, c, 4096 + 512, nullptr);
    REQUIRE(each_once(reap_all(*b, {&head, &tail, &small})));
    CHECK(head.result == 4096 - 1000);
    CHECK(tail.result == 8192);
    CHECK(small.result == 512);
    CHECK(std::equal(a.begin(), a.begin() + head.result, model.begin() + 1000));
    CHECK(std::equal(b2.begin(), b2.begin() + tail.result, model.begin() + 8192));
    CHECK(std::equal(c.begin(), c.end(), model.begin() + 4096 + 512));
  }

  SECTION("many neighbouring writes and zero requests sharing blocks, all at once, over every connection") {
    // 1000-byte pieces from byte 1000 on: four or five share each block.
    std::vector<std::vector<std::byte>> data;
    std::vector<IoRequest> reqs;
    std::vector<std::byte> zeroes(1000);
    for (unsigned i = 0; i < 100; ++i) data.push_back(pattern(1000, 100 + i));
    for (unsigned i = 0; i < 100; ++i) {
      const std::uint64_t at = 1000 + i * 1000ull;
      if (i % 5 == 3) {
        reqs.push_back(IoRequest::make_zero(0, zeroes, at, nullptr));
        std::fill_n(model.begin() + static_cast<std::ptrdiff_t>(at), 1000, std::byte{0});
      } else {
        reqs.push_back(IoRequest::make_write(0, data[i], at, nullptr));
        std::copy(data[i].begin(), data[i].end(), model.begin() + static_cast<std::ptrdiff_t>(at));
      }
    }
    // An aligned write beside them, with an unaligned tail.
    auto big = pattern(3 * 4096 + 100, 7);
    reqs.push_back(IoRequest::make_write(0, big, 40 * 4096, nullptr));
    std::copy(big.begin(), big.end(), model.begin() + 40 * 4096);
    std::vector<IoRequest*> ptrs;
    for (IoRequest& r : reqs) ptrs.push_back(&r);
    REQUIRE(each_once(transfer_all(*b, ptrs)));
    for (const IoRequest& r : reqs) CHECK(r.result == static_cast<long>(r.buffer.size()));
  }

  SECTION("unaligned reads, of a byte to many blocks, read exactly what is there") {
    std::vector<std::vector<std::byte>> back;
    std::vector<IoRequest> reqs;
    const std::vector<std::pair<std::uint64_t, std::size_t>> ranges = {
        {1, 1}, {511, 2}, {4095, 2}, {4096 + 512, 3584}, {12345, 3 * 4096}, {total - 1000, 1000}};
    for (const auto& [at, n] : ranges) back.emplace_back(n);
    for (std::size_t i = 0; i < ranges.size(); ++i)
      reqs.push_back(IoRequest::make_read(0, back[i], ranges[i].first, nullptr));
    std::vector<IoRequest*> ptrs;
    for (IoRequest& r : reqs) ptrs.push_back(&r);
    REQUIRE(each_once(transfer_all(*b, ptrs)));
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      INFO("range " << i);
      CHECK(reqs[i].result == static_cast<long>(ranges[i].second));
      CHECK(std::equal(back[i].begin(), back[i].end(), model.begin() + static_cast<std::ptrdiff_t>(ranges[i].first)));
    }
  }

  // Read back whole, on fresh connections.
  auto reader = backend_for({server->uri()}, false, 4);
  std::vector<std::byte> back(total);
  IoRequest r = IoRequest::make_read(0, back, 0, nullptr);
  REQUIRE(each_once(reap_all(*reader, {&r})));
  REQUIRE(r.result == static_cast<long>(total));
  CHECK(std::equal(back.begin(), back.end(), model.begin(), model.end()));
}
