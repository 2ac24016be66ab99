#include "kcopy/status_line.hpp"

#include <unistd.h>

#include "kcopy/units.hpp"

namespace kcopy {

SignalSafeLine& SignalSafeLine::text(const char* s) {
  while (*s && len_ < sizeof buf_) buf_[len_++] = *s++;
  return *this;
}

SignalSafeLine& SignalSafeLine::number(std::uint64_t n) {
  char digits[20];
  std::size_t k = 0;
  do digits[k++] = static_cast<char>('0' + n % 10);
  while ((n /= 10) != 0);
  while (k > 0 && len_ < sizeof buf_) buf_[len_++] = digits[--k];
  return *this;
}

SignalSafeLine& SignalSafeLine::tenths(std::uint64_t t) { return number(t / 10).text(".").number(t % 10); }

void SignalSafeLine::write_to_stderr() const { [[maybe_unused]] auto n = ::write(STDERR_FILENO, buf_, len_); }

SignalSafeLine status_line(const StatusCounters& c) {
  const std::uint64_t ms = c.elapsed_ms;
  const std::uint64_t mib_tenths = ms ? sectors_to_bytes(c.done_sectors) * 10 * 1000 / ms >> 20 : 0;
  SignalSafeLine line;
  line.text("kcopy: ")
      .number(c.done_sectors)
      .text(" of ")
      .number(c.total_sectors)
      .text(" sectors copied (")
      .number(c.total_sectors ? c.done_sectors * 100 / c.total_sectors : 0)
      .text("%), ")
      .tenths(ms / 100)
      .text(" s, ")
      .tenths(mib_tenths)
      .text(" MiB/s\n");
  return line;
}

}  // namespace kcopy
