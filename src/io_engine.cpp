#include "kcopy/io_engine.hpp"

#include "kcopy/aio_backend.hpp"
#include "kcopy/error.hpp"
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

ChosenBackend make_backend(IoEngine engine, std::vector<FdEndpoint> endpoints, std::size_t max_requests,
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

}  // namespace kcopy
