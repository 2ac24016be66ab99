// NBD URIs on the command line: which arguments are URIs, where a region's
// fields begin, and what a message may print of a URI. Pure: nothing connects.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "kcopy/error.hpp"
#include "kcopy/nbd_uri.hpp"

using namespace kcopy;

TEST_CASE("only libnbd's schemes followed by :// make an argument an NBD URI") {
  for (const char* uri : {"nbd://host/disk", "nbds://host", "nbd+unix:///?socket=/s", "nbds+unix:///x?socket=/s",
                          "nbd+vsock://2/", "nbds+vsock://2:10809/e"}) {
    INFO(uri);
    CHECK(is_nbd_uri(uri));
  }
  for (const char* path : {"/dev/sda", "nbd", "nbd:2048", "nbd:/x", "NBD://host/disk", "nbd+tcp://host/",
                           "http://host/disk", "./nbd://x", ""}) {
    INFO(path);
    CHECK_FALSE(is_nbd_uri(path));
  }
}

TEST_CASE("region fields are split off after the export name or query, never from HOST:PORT") {
  struct Case {
    const char* arg;
    const char* uri;
    std::vector<std::string> fields;
  };
  const std::vector<Case> cases = {
      {"nbd://host:10809/disk:2048:1G", "nbd://host:10809/disk", {"2048", "1G"}},
      {"nbd://host:10809/disk:2048", "nbd://host:10809/disk", {"2048"}},
      {"nbd://host:10809/disk", "nbd://host:10809/disk", {}},
      {"nbd://host:10809", "nbd://host:10809", {}},
      {"nbd://host", "nbd://host", {}},
      {"nbd://host:10809/:0:8", "nbd://host:10809/", {"0", "8"}},
      {"nbd+unix:///disk?socket=/tmp/s.sock:0:8", "nbd+unix:///disk?socket=/tmp/s.sock", {"0", "8"}},
      {"nbd+unix:///disk?socket=/tmp/s.sock", "nbd+unix:///disk?socket=/tmp/s.sock", {}},
      {"nbd://[::1]:10809/disk:0x800", "nbd://[::1]:10809/disk", {"0x800"}},
      {"nbd://[::1]", "nbd://[::1]", {}},
      {"nbd://host/vm:backup", "nbd://host/vm:backup", {}},         // a name, not a number: stays
      {"nbd://host/vm:backup:16", "nbd://host/vm:backup", {"16"}},  // only the trailing number goes
      {"nbd://host/a:1:2:3", "nbd://host/a:1", {"2", "3"}},         // at most two
      {"nbd://host/disk%3A1", "nbd://host/disk%3A1", {}},           // an encoded ':' is the name's
      {"nbd://host/disk:", "nbd://host/disk", {""}},                // empty: parse_sectors says why
      {"nbd+unix:///?socket=/run/a:1/s.sock", "nbd+unix:///?socket=/run/a:1/s.sock", {}},  // not a number
      {"nbds://alice:pw@host:10809/disk:8", "nbds://alice:pw@host:10809/disk", {"8"}},
  };
  for (const Case& c : cases) {
    INFO(c.arg);
    const NbdRegionArg got = split_nbd_region(c.arg);
    CHECK(got.uri == c.uri);
    CHECK(got.fields == c.fields);
  }
}

TEST_CASE("a malformed NBD URI is refused in one line that shows no secret") {
  struct Case {
    const char* arg;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"nbd://host:10809:0:8", "SECTOR and COUNT go after the export name"},
      {"nbd://host:10809:0:8", "host:10809/:0:8"},
      {"nbd://host:port/disk", "port 'port' is not a number"},
      {"nbd://host:70000/disk", "from 1 to 65535"},
      {"nbd://[::1/disk", "closing ']'"},
      {"nbd+unix:///disk", "needs ?socket=PATH"},
      {"nbd+unix://host/disk?socket=/s", "names no host"},
      {"nbd://host/my disk", "percent-encoded"},
      {"nbd://bob:hunter2@host:x/disk?tls-psk-file=/keys/k.psk", "not a number"},
  };
  for (const Case& c : cases) {
    INFO(c.arg);
    try {
      split_nbd_region(c.arg);
      FAIL("accepted");
    } catch (const Error& e) {
      const std::string what = e.what();
      CHECK_THAT(what, Catch::Contains(c.says));
      CHECK(what.find('\n') == std::string::npos);
      CHECK(what.find("hunter2") == std::string::npos);
      CHECK(what.find("k.psk") == std::string::npos);
    }
  }
}

TEST_CASE("a printed URI shows neither the password nor secret query values") {
  const std::string e = "\u2026";
  struct Case {
    const char* uri;
    std::string shown;
  };
  const std::vector<Case> cases = {
      {"nbd://host:10809/disk", "nbd://host:10809/disk"},
      {"nbds://alice@host/disk", "nbds://alice@host/disk"},
      {"nbds://alice:hunter2@host/disk", "nbds://alice:" + e + "@host/disk"},
      {"nbds://alice:p@ss@host/disk", "nbds://alice:" + e + "@host/disk"},  // the last '@' ends it
      {"nbds+unix:///disk?socket=/s&tls-psk-file=/keys/k.psk", "nbds+unix:///disk?socket=/s&tls-psk-file=" + e},
      {"nbds://h/d?tls-certificates=/etc/pki/nbd&tls-username=bob",
       "nbds://h/d?tls-certificates=/etc/pki/nbd&tls-username=bob"},
      {"nbd://h/d?api-token=abc;db_Password=x;x-secret-key=y",
       "nbd://h/d?api-token=" + e + ";db_Password=" + e + ";x-secret-key=" + e},
      {"nbd://h/d?tls%2Dpsk%2Dfile=/k#frag", "nbd://h/d?tls%2Dpsk%2Dfile=" + e + "#frag"},
      {"nbd://h/d?socket", "nbd://h/d?socket"},
      {"not a uri:pw@x", "not a uri:pw@x"},
  };
  for (const Case& c : cases) {
    INFO(c.uri);
    CHECK(redacted_uri(c.uri) == c.shown);
  }
}

TEST_CASE("a URI's secrets can be found to scrub them from a library's message") {
  CHECK(uri_secrets("nbd://host/disk").empty());
  CHECK(uri_secrets("nbds://alice:hunter2@host/d?tls-psk-file=/k%20s/key.psk&socket=/s") ==
        std::vector<std::string>{"hunter2", "/k%20s/key.psk", "/k s/key.psk"});
  CHECK(uri_secrets("nbds://alice@host/d?tls-certificates=/etc/pki").empty());
}
