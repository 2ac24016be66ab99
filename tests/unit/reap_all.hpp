#pragma once
// For the backends' unit tests: submit requests, reap until nothing is in flight.

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "kcopy/io_backend.hpp"

namespace kcopy::test {

/// Submits `reqs`, reaps (at most `batch` at a time) until the backend says
/// nothing is in flight, and returns how often each request came back.
inline std::vector<int> reap_all(IoBackend& b, const std::vector<IoRequest*>& reqs, std::size_t batch = 16) {
  std::unordered_map<const IoRequest*, std::size_t> index;
  for (std::size_t i = 0; i < reqs.size(); ++i) index[reqs[i]] = i;
  b.submit(reqs);
  std::vector<int> times(reqs.size());
  std::vector<IoRequest*> out(batch);
  for (;;) {
    const std::size_t n = b.reap(out, 1);
    if (n == 0) break;
    for (std::size_t i = 0; i < n; ++i) ++times.at(index.at(out[i]));
  }
  return times;
}

/// Every request came back exactly once.
inline bool each_once(const std::vector<int>& times) {
  return std::all_of(times.begin(), times.end(), [](int t) { return t == 1; });
}

}  // namespace kcopy::test
