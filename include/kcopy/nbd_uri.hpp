#pragma once
// NBD URIs on the command line: telling a URI from a path, splitting a
// region's `:SECTOR[:COUNT]` fields off one, and printing one without its
// secrets. Pure functions: nothing here connects anywhere (NbdExport does).

#include <string>
#include <string_view>
#include <vector>

namespace kcopy {

/// Whether `arg` is an NBD URI rather than a path: it starts with one of the
/// schemes libnbd 1.14 connects to, followed by "://": `nbd`, `nbds` (TLS),
/// `nbd+unix`, `nbds+unix` (a Unix socket, `?socket=PATH`), `nbd+vsock`,
/// `nbds+vsock` (AF_VSOCK). Lower case only, as libnbd compares them. "nbd:2048"
/// is not a URI (it is a file named "nbd" and a SECTOR).
bool is_nbd_uri(std::string_view arg);

/// A region argument naming an NBD export: the URI and the raw `:` fields that
/// followed it (0, 1 or 2 of them: SECTOR, then COUNT), as typed; the caller
/// parses them (parse_sectors).
struct NbdRegionArg {
  std::string uri;
  std::vector<std::string> fields;
};

/// Splits `arg` (is_nbd_uri(arg) must hold) into URI and fields. Fields are
/// split off only from what follows the authority (`[USER[:PASSWORD]@]HOST[:PORT]`),
/// that is from the export path or the query, never from HOST:PORT; from the
/// right, at most two, while they look like numbers (as parse_region does for
/// paths: empty, or starting with a digit, '+', '-' or a blank; and holding none
/// of "/?#&=", which a number never has):
///   nbd://host:10809/disk:2048:1G             -> nbd://host:10809/disk, "2048", "1G"
///   nbd+unix:///disk?socket=/tmp/s.sock:0:8   -> nbd+unix:///disk?socket=/tmp/s.sock, "0", "8"
///   nbd://host:10809                          -> itself, no fields
/// An export name or socket path that itself ends in ":<number>" is written
/// with the colon percent-encoded (%3A), which libnbd decodes.
///
/// Checks what libnbd would refuse later with a vaguer message: a scheme
/// without an authority part ("nbd:/x"), an unterminated IPv6 "[...]", a port
/// that is not a number from 1 to 65535 (with a hint when it is really
/// HOST:PORT:SECTOR: the fields need a '/' before them), a Unix-socket URI
/// without `socket=`, a host in a Unix-socket URI, and control characters or
/// blanks. Throws kcopy::Error with a one-line message naming the URI in its
/// redacted form only.
NbdRegionArg split_nbd_region(std::string_view arg);

/// `uri` safe to print: a password in the authority (`user:SECRET@host`) and the
/// values of secret query parameters are replaced by "…" (U+2026). Secret
/// parameters are `tls-psk-file` (where the TLS key is; whoever can read that
/// path has the key) and any whose name contains "password", "passwd",
/// "secret" or "token" (case-insensitive). `tls-certificates` (a directory of
/// public certificates and the client's key, named by convention) and
/// `tls-username` stay. Best effort on malformed input; never throws but
/// std::bad_alloc. The result still needs quote() inside a message.
std::string redacted_uri(std::string_view uri);

/// The secrets redacted_uri() hides, as written in `uri` and, where they
/// differ, percent-decoded: for scrubbing a library's message that may quote
/// one of them on its own (a password, a key file's path). Never throws but
/// std::bad_alloc.
std::vector<std::string> uri_secrets(std::string_view uri);

/// A region argument (`URI[:SECTOR[:COUNT]]`, is_nbd_uri) safe to print: its URI
/// redacted, its fields kept. Never throws but std::bad_alloc (a malformed
/// argument is redacted whole).
std::string redacted_region(std::string_view arg);

}  // namespace kcopy
