// The libaio and pread/pwrite backends on real files: what the engine relies on.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "backend_harness.hpp"
#include "kcopy/aio_backend.hpp"
#include "kcopy/sync_backend.hpp"

using namespace kcopy;
using kcopy::test::TempFile;

namespace {

std::unique_ptr<IoBackend> make_backend(bool aio, std::vector<FdEndpoint> eps) {
  if (aio) return std::make_unique<AioBackend>(std::move(eps), 8);
  return std::make_unique<SyncBackend>(std::move(eps), 8);
}

// Submits `reqs` and reaps until all have come back; returns how many came back.
std::size_t run(IoBackend& b, std::vector<IoRequest*> reqs) {
  b.submit(reqs);
  std::vector<IoRequest*> out(8);
  std::size_t back = 0;
  while (back < reqs.size()) {
    const std::size_t n = b.reap(out, 1);
    if (n == 0) break;
    back += n;
  }
  return back;
}

}  // namespace

TEST_CASE("a file backend reads and writes at the byte offsets it is given") {
  const bool aio = GENERATE(true, false);
  TempFile src(64 * 1024), dst(64 * 1024);
  auto b = make_backend(aio, {{src.fd, src.fd, 1, {}}, {dst.fd, dst.fd, 1, {}}});
  alignas(4096) static std::byte buf[8192];
  IoRequest rd = IoRequest::make_read(0, std::span(buf), 4096, nullptr);
  REQUIRE(run(*b, {&rd}) == 1);
  REQUIRE(rd.result == 8192);
  REQUIRE(std::to_integer<int>(buf[0]) == 4096 % 251);
  IoRequest wr = IoRequest::make_write(1, std::span(buf), 512, nullptr);
  REQUIRE(run(*b, {&wr}) == 1);
  REQUIRE(wr.result == 8192);
  char check = 0;
  REQUIRE(::pread(dst.fd, &check, 1, 512) == 1);
  REQUIRE(check == static_cast<char>(4096 % 251));
  REQUIRE(b->flush(1) == 0);
}

TEST_CASE("a read past the end of a file comes back short, not as an error") {
  const bool aio = GENERATE(true, false);
  TempFile src(10000);
  auto b = make_backend(aio, {{src.fd, src.fd, 1, {}}});
  alignas(4096) static std::byte buf[8192];
  IoRequest rd = IoRequest::make_read(0, std::span(buf), 4096, nullptr);
  REQUIRE(run(*b, {&rd}) == 1);
  REQUIRE(rd.result == 10000 - 4096);
}

TEST_CASE("a request the kernel refuses comes back once, with -errno") {
  const bool aio = GENERATE(true, false);
  TempFile src(4096);
  const int ro = ::open(src.path.c_str(), O_RDONLY);
  REQUIRE(ro >= 0);
  auto b = make_backend(aio, {{ro, ro, 1, {}}});
  alignas(4096) static std::byte buf[4096];
  IoRequest wr = IoRequest::make_write(0, std::span(buf), 0, nullptr);  // writing a read-only fd
  IoRequest rd = IoRequest::make_read(0, std::span(buf), 0, nullptr);
  REQUIRE(run(*b, {&wr, &rd}) == 2);
  REQUIRE(wr.result == -EBADF);
  REQUIRE(rd.result == 4096);
  ::close(ro);
}

TEST_CASE("requests unaligned to the direct-I/O alignment go to the page-cache descriptor") {
  const FdEndpoint ep{3, 4, 4096, {}};
  alignas(4096) static std::byte buf[8192];
  REQUIRE(ep.fd_for(8192, std::span(buf, 4096)) == 3);
  REQUIRE(ep.fd_for(512, std::span(buf, 4096)) == 4);         // offset
  REQUIRE(ep.fd_for(8192, std::span(buf, 512)) == 4);         // length
  REQUIRE(ep.fd_for(8192, std::span(buf + 512, 4096)) == 4);  // memory
}
