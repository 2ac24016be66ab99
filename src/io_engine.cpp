#include "kcopy/io_engine.hpp"

#include <algorithm>

#include "kcopy/aio_backend.hpp"
#include "kcopy/error.hpp"
#include "kcopy/multiplex_backend.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/sync_backend.hpp"
#include "kcopy/uring_backend.hpp"

namespace kcopy {

IoEngine parse_io_engine(std::string_view text) {
  for (IoEngine e : {IoEngine::automatic, IoEngine::io_uring, IoEngine::libaio, IoEngine::sync})
    if (text == io_engine_name(e)) return e;
  throw Error("--io-engine " + quote(text) + " is not one of io_uring, libaio, sync, auto");
}

const char* io_engine_name(IoEngine engine) {
  switch (engine) {
    case IoEngine::automatic:
      return "auto";
    case IoEngine::io_uring:
      return "io_uring";
    case IoEngine::libaio:
      return "libaio";
    case IoEngine::sync:
      return "sync";
  }
  return "?";
}

namespace {

// One backend of one method for every endpoint (the rules of make_backend, but FUSE's).
ChosenBackend make_one(IoEngine engine, std::vector<FdEndpoint> endpoints, std::size_t max_requests,
                       std::uint64_t copy_bytes, std::uint64_t io_size) {
  switch (engine) {
    case IoEngine::sync:
      return {std::make_unique<SyncBackend>(std::move(endpoints), max_requests), engine, "as asked"};
    case IoEngine::libaio:
      return {std::make_unique<AioBackend>(std::move(endpoints), max_requests), engine, "as asked"};
    case IoEngine::io_uring:
      return {std::make_unique<UringBackend>(std::move(endpoints), max_requests), engine, "as asked"};
    case IoEngine::automatic:
      break;
  }
  if (copy_bytes <= io_size)
    return {std::make_unique<SyncBackend>(std::move(endpoints), max_requests), IoEngine::sync,
            "the copy is one sub-job: no ring or AIO context to set up"};
  try {
    return {std::make_unique<UringBackend>(endpoints, max_requests), IoEngine::io_uring, "the fastest here"};
  } catch (const Error& e) {
    return {std::make_unique<AioBackend>(std::move(endpoints), max_requests), IoEngine::libaio,
            std::string("io_uring is not usable: ") + e.what()};
  }
}

constexpr const char* fuse_reason = "FUSE files: never io_uring, which reports their partly failed requests as done";

}  // namespace

ChosenBackend make_backend(IoEngine engine, std::vector<FdEndpoint> endpoints, std::size_t max_requests,
                           std::uint64_t copy_bytes, std::uint64_t io_size) {
  std::vector<bool> on_fuse;
  for (const FdEndpoint& e : endpoints) on_fuse.push_back(e.on_fuse);
  const auto fuse_count = std::count(on_fuse.begin(), on_fuse.end(), true);
  ChosenBackend chosen;
  if (fuse_count == 0) {
    chosen = make_one(engine, std::move(endpoints), max_requests, copy_bytes, io_size);
  } else if (static_cast<std::size_t>(fuse_count) == endpoints.size()) {
    const bool uring = engine == IoEngine::io_uring || (engine == IoEngine::automatic && copy_bytes > io_size);
    chosen = uring ? ChosenBackend{std::make_unique<AioBackend>(endpoints, max_requests), IoEngine::libaio, fuse_reason}
                   : make_one(engine, endpoints, max_requests, copy_bytes, io_size);
  } else {
    // FUSE files and others: the others' method, and libaio for the FUSE files where that is io_uring.
    std::vector<FdEndpoint> plain, fuse;
    std::vector<MultiplexBackend::Route> routes;
    for (const FdEndpoint& e : endpoints) {
      std::vector<FdEndpoint>& to = e.on_fuse ? fuse : plain;
      routes.push_back({e.on_fuse ? 1u : 0u, static_cast<unsigned>(to.size()), e.placement});
      to.push_back(e);
    }
    chosen = make_one(engine, std::move(plain), max_requests, copy_bytes, io_size);
    if (chosen.engine != IoEngine::io_uring) {
      chosen = make_one(chosen.engine, endpoints, max_requests, copy_bytes, io_size);
    } else {
      std::vector<std::unique_ptr<IoBackend>> children;
      children.push_back(std::move(chosen.backend));
      children.push_back(std::make_unique<AioBackend>(std::move(fuse), max_requests));
      chosen.backend = std::make_unique<MultiplexBackend>(std::move(children), std::move(routes), max_requests);
      chosen.reason += std::string("; ") + fuse_reason + ": libaio";
    }
  }
  for (const bool fuse : on_fuse)
    chosen.methods.push_back(fuse && chosen.engine == IoEngine::io_uring ? IoEngine::libaio : chosen.engine);
  return chosen;
}

}  // namespace kcopy
