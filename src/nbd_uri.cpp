#include "kcopy/nbd_uri.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <string>

#include "kcopy/error.hpp"
#include "kcopy/quote.hpp"

namespace kcopy {

namespace {

// libnbd 1.14's schemes (lib/uri.c), compared as it does: exactly.
constexpr std::array<std::string_view, 6> schemes = {"nbd", "nbds", "nbd+unix", "nbds+unix", "nbd+vsock", "nbds+vsock"};

constexpr std::string_view ellipsis = "\u2026";

// A URI cut into its scheme, authority and the rest (path, query, fragment).
struct UriParts {
  std::string_view scheme;
  std::string_view authority;
  std::string_view tail;
};

// Nothing but "scheme://" is looked at; the caller checks the scheme.
bool cut(std::string_view uri, UriParts& parts) {
  const auto sep = uri.find("://");
  if (sep == std::string_view::npos) return false;
  parts.scheme = uri.substr(0, sep);
  const std::string_view rest = uri.substr(sep + 3);
  const auto end = std::min(rest.find_first_of("/?#"), rest.size());
  parts.authority = rest.substr(0, end);
  parts.tail = rest.substr(end);
  return true;
}

// A field that parse_region would take for a number (see split_nbd_region).
bool looks_like_number(std::string_view field) {
  if (field.find_first_of("/?#&=") != std::string_view::npos) return false;
  if (field.empty()) return true;
  const char c = field.front();
  return std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == ' ' || c == '\t';
}

int hex_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10; }

// %XX escapes decoded (query parameter names are compared decoded, as libnbd does).
std::string percent_decoded(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool is_secret_parameter(std::string_view name) {
  std::string lower = percent_decoded(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "tls-psk-file") return true;
  for (const std::string_view word : {"password", "passwd", "secret", "token"})
    if (lower.find(word) != std::string::npos) return true;
  return false;
}

// Each query parameter (separated by '&' or ';') of `query` (without its '?').
template <class F>
void for_each_parameter(std::string_view query, F&& on_each) {
  while (true) {
    const auto end = std::min(query.find_first_of("&;"), query.size());
    on_each(query.substr(0, end));
    if (end == query.size()) return;
    query.remove_prefix(end + 1);
  }
}

bool has_socket_parameter(std::string_view tail) {
  const auto q = tail.find('?');
  if (q == std::string_view::npos) return false;
  std::string_view query = tail.substr(q + 1);
  query = query.substr(0, std::min(query.find('#'), query.size()));
  bool found = false;
  for_each_parameter(query, [&found](std::string_view p) { found |= p.substr(0, p.find('=')) == "socket"; });
  return found;
}

// Where `uri`'s secrets are, in order, as views into it: the password of the
// authority ([USER[:PASSWORD]@]HOST[:PORT]; the last '@' ends it) and the
// values of secret query parameters.
std::vector<std::string_view> secret_spans(std::string_view uri) {
  std::vector<std::string_view> spans;
  UriParts parts;
  if (!cut(uri, parts)) return spans;
  if (const auto at = parts.authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = parts.authority.substr(0, at);
    if (const auto colon = userinfo.find(':'); colon != std::string_view::npos)
      spans.push_back(userinfo.substr(colon + 1));
  }
  const auto q = parts.tail.find('?');
  if (q == std::string_view::npos) return spans;
  std::string_view query = parts.tail.substr(q + 1);
  query = query.substr(0, std::min(query.find('#'), query.size()));
  for_each_parameter(query, [&spans](std::string_view p) {
    const auto eq = p.find('=');
    if (eq != std::string_view::npos && is_secret_parameter(p.substr(0, eq))) spans.push_back(p.substr(eq + 1));
  });
  return spans;
}

[[noreturn]] void malformed(std::string_view uri, const std::string& why) {
  throw Error("NBD URI " + quote(redacted_uri(uri)) + ": " + why, EINVAL);
}

// HOST[:PORT] of a TCP or vsock authority (the part after any '@'): checked as
// libnbd would take it, with a hint for HOST:PORT:SECTOR.
void check_host_port(std::string_view uri, std::string_view host_port) {
  std::string_view port;
  if (!host_port.empty() && host_port.front() == '[') {
    const auto close = host_port.find(']');
    if (close == std::string_view::npos) malformed(uri, "the IPv6 address has no closing ']'");
    const std::string_view after = host_port.substr(close + 1);
    if (!after.empty() && after.front() != ':') malformed(uri, "only ':PORT' may follow the IPv6 address");
    if (!after.empty()) port = after.substr(1);
  } else if (const auto colon = host_port.find(':'); colon != std::string_view::npos) {
    port = host_port.substr(colon + 1);
  } else {
    return;
  }
  if (port.empty()) return;  // "host:" is the default port, as libnbd takes it
  const bool digits = std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); });
  if (digits && port.size() <= 5) {
    const unsigned long number = std::stoul(std::string(port));
    if (number >= 1 && number <= 65535) return;
  }
  std::string why = "the port " + quote(port) + " is not a number from 1 to 65535";
  if (port.find(':') != std::string_view::npos) {
    const std::string_view host = host_port.substr(0, host_port.size() - port.size() - 1);
    const std::string_view first = port.substr(0, port.find(':'));
    why += "; SECTOR and COUNT go after the export name, never after HOST:PORT (the default export is '/': " +
           std::string(host) + ":" + std::string(first) + "/:" + std::string(port.substr(first.size() + 1)) + ")";
  }
  malformed(uri, why);
}

}  // namespace

bool is_nbd_uri(std::string_view arg) {
  UriParts parts;
  if (!cut(arg, parts)) return false;
  return std::find(schemes.begin(), schemes.end(), parts.scheme) != schemes.end();
}

NbdRegionArg split_nbd_region(std::string_view arg) {
  UriParts parts;
  if (!cut(arg, parts) || std::find(schemes.begin(), schemes.end(), parts.scheme) == schemes.end())
    malformed(arg, "not an NBD URI (nbd://, nbds://, nbd+unix://, nbds+unix://, nbd+vsock://, nbds+vsock://)");
  if (std::any_of(arg.begin(), arg.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; }))
    malformed(arg, "blanks and control characters must be percent-encoded");

  // Fields come off the path or query only: the authority is never looked at.
  NbdRegionArg out;
  std::string_view tail = parts.tail;
  while (out.fields.size() < 2) {
    const auto colon = tail.rfind(':');
    if (colon == std::string_view::npos) break;
    const std::string_view field = tail.substr(colon + 1);
    if (!looks_like_number(field)) break;
    out.fields.insert(out.fields.begin(), std::string(field));
    tail = tail.substr(0, colon);
  }
  out.uri = std::string(arg.substr(0, arg.size() - parts.tail.size() + tail.size()));

  const std::string_view host_port =
      parts.authority.substr(parts.authority.rfind('@') == std::string_view::npos ? 0 : parts.authority.rfind('@') + 1);
  if (parts.scheme.ends_with("+unix")) {
    if (!host_port.empty()) malformed(out.uri, "a Unix-socket URI names no host (nbd+unix:///EXPORT?socket=PATH)");
    if (!has_socket_parameter(tail)) malformed(out.uri, "a Unix-socket URI needs ?socket=PATH");
  } else {
    check_host_port(out.uri, host_port);
  }
  return out;
}

std::string redacted_uri(std::string_view uri) {
  std::string out;
  std::size_t at = 0;
  for (const std::string_view secret : secret_spans(uri)) {
    const auto begin = static_cast<std::size_t>(secret.data() - uri.data());
    out += uri.substr(at, begin - at);
    out += ellipsis;
    at = begin + secret.size();
  }
  out += uri.substr(at);
  return out;
}

std::vector<std::string> uri_secrets(std::string_view uri) {
  std::vector<std::string> out;
  for (const std::string_view secret : secret_spans(uri)) {
    if (secret.empty()) continue;
    out.emplace_back(secret);
    if (std::string decoded = percent_decoded(secret); decoded != secret) out.push_back(std::move(decoded));
  }
  return out;
}

std::string redacted_region(std::string_view arg) {
  try {
    const NbdRegionArg split = split_nbd_region(arg);
    std::string out = redacted_uri(split.uri);
    for (const std::string& f : split.fields) out += ":" + f;
    return out;
  } catch (const Error&) {
    return redacted_uri(arg);
  }
}

}  // namespace kcopy
