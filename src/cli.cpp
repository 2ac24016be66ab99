#include "kcopy/cli.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <iostream>
#include <string_view>

#include "kcopy/error.hpp"
#include "kcopy/page_pool.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/region.hpp"
#include "kcopy/units.hpp"
#include "kcopy/version.hpp"

namespace kcopy {
namespace {

constexpr int max_seconds = 1'000'000'000;  // --mapfile-interval, --nbd-timeout: about 31 years

// A number of seconds above 0, decimals allowed, at most max_seconds.
const CLI::Validator seconds_validator(
    [](std::string& text) {
      double seconds = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
      if (ec != std::errc() || end != text.data() + text.size() || !(seconds > 0))
        return quote(text) + " is not a number of seconds above 0 (e.g. 30, 0.5)";
      if (seconds > max_seconds)
        return quote(text) + " is too long: at most " + std::to_string(max_seconds) + " seconds (about 31 years)";
      return std::string();
    },
    "");

// CLI11's usage line and positional listing, in the words of the man page.
class Formatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App*, std::string) const override {
    return "Usage: kcopy [OPTIONS] SOURCE DEST [DEST...]\n"
           "       kcopy [OPTIONS] --zero DEST [DEST...]\n";
  }
  // Without CLI11's "{false}" after a negated flag.
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override {
    std::string name = CLI::Formatter::make_option_name(opt, is_positional);
    for (std::size_t open = name.find('{'); open != std::string::npos; open = name.find('{', open))
      name.erase(open, name.find('}', open) - open + 1);
    return name;
  }
  std::string make_positionals(const CLI::App*) const override {
    return "\nRegions:\n"
           "  SOURCE                      PATH[:SECTOR[:COUNT]]: sector defaults to 0, count to the end\n"
           "  DEST                        PATH[:SECTOR[:COUNT]]: sector defaults to 0, count to the source's\n"
           "                              (with --zero: the first DEST's count defaults to the end of it)\n"
           "  PATH                        a block device, an image file, or an NBD URI: nbd://HOST[:PORT]/EXPORT,\n"
           "                              nbd+unix:///EXPORT?socket=SOCKET (nbds:// with TLS); the fields follow\n"
           "                              the URI's path or query: nbd://host/disk:2048:1G\n";
  }
};

// A command line that cannot be run: says why on stderr, and whether a JSON
// report (of a dry run) was asked for: as parsed so far, or, since parsing
// may have stopped before them, as the arguments say.
ParsedCommandLine refusal(const std::string& message, const Options& parsed, int argc, char** argv) {
  std::cerr << "kcopy: " << message << "\n";
  ParsedCommandLine out;
  out.exit_status = 128;
  out.error = message;
  out.json = parsed.json;
  out.dry_run = parsed.dry_run;
  for (int i = 1; i < argc && std::string_view(argv[i]) != "--"; ++i) {
    const std::string_view arg = argv[i];
    out.json |= arg == "--json";
    out.dry_run |= arg == "--dry-run" || arg == "-n";
  }
  return out;
}

// CLI11's refusal of arguments it cannot place, with the way out when one is
// a path that begins with '-' (taken for an option).
std::string unexpected_arguments(const std::vector<std::string>& extras, const std::string& what) {
  for (const std::string& arg : extras) {
    struct stat st {};
    if (arg.size() < 2 || arg[0] != '-' || (arg.starts_with("--") && ::stat(arg.c_str(), &st) != 0)) continue;
    return quote(arg) + " is not an option (see --help); to name a file that begins with '-', write ./" +
           printable(arg) + " or put -- before the regions";
  }
  return what + " (see --help)";
}

}  // namespace

ParsedCommandLine parse_command_line(int argc, char** argv) {
  Options opt;
  std::string io_size = std::to_string(default_io_size / 1024) + "K";
  int verbose = 0;
  std::string max_rate;
  std::string io_engine = "auto";
  int quiet = 0;
  bool progress = false;

  CLI::App app{
      "kcopy: copy a range of 512-byte sectors from one block device, image file or NBD export to up to\n"
      "six others, asynchronously with O_DIRECT and io_uring or libaio (libnbd for NBD), through a bounded\n"
      "page pool (a userspace dm-kcopyd).\n"
      "REGION := PATH[:SECTOR[:COUNT]], in 512-byte sectors; decimal or 0x hex; suffixes\n"
      "s, K/KiB, M/MiB, G/GiB, T/TiB make a byte size. Exit status: 0 all copied; bit i-1 set if\n"
      "destination i failed; +64 source read error; 128 nothing copied (bad arguments, device\n"
      "errors); 128+N stopped by signal N. See kcopy(1).",
      "kcopy"};
  app.formatter(std::make_shared<Formatter>());
  app.add_option("SOURCE DEST...", opt.regions, "the source region, then 1 to 6 destination regions")
      ->type_name("REGION");
  CLI::Option* pages =
      app.add_option("--pages", opt.pages,
                     "4 KiB pages set aside for data in flight (default " + std::to_string(default_pages) + " = " +
                         std::to_string(default_pages * page_size >> 20) + " MiB; " +
                         std::to_string(nbd_default_pages) + " = " +
                         std::to_string(nbd_default_pages * page_size >> 20) + " MiB when a region is an NBD URI)")
          ->type_name("N")
          ->check(CLI::Validator(
              [](std::string& text) {
                std::uint64_t n = 0;
                const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
                const bool ok = ec == std::errc() && end == text.data() + text.size() && n > 0 && n <= (1ull << 32);
                return ok ? std::string() : quote(text) + " is not a whole number of pages from 1 to 4294967296";
              },
              ""));
  app.add_option("--io-size", io_size, "size of one sub-job, e.g. 512K, 1M, 2048s (default " + io_size + ")")
      ->type_name("SIZE");
  app.add_flag("--ignore-errors", opt.ignore_errors,
               "go on past read and write errors: scan failed sub-jobs again down to single logical\n"
               "blocks, write unreadable blocks as zeroes, list every bad range");
  app.add_option("--io-engine", io_engine,
                 "the I/O backend for local devices: io_uring, libaio, sync, or auto (the default: the\n"
                 "fastest that works here: io_uring, else libaio; sync for a copy of one sub-job)")
      ->type_name("ENGINE")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // the last one given counts
  app.add_flag("--buffered", opt.buffered, "do not use O_DIRECT (go through the page cache)");
  app.add_flag("--no-flush", opt.no_flush, "skip the final fdatasync of each destination");
  app.add_flag("-f,--force", opt.force, "write to a block device even when it is in use (no O_EXCL)");
  CLI::Option* progress_flag =
      app.add_flag("--progress,!--no-progress", progress,
                   "show (or not) a progress line on stderr: redrawn in place on a terminal,\n"
                   "a plain line every 10 s otherwise (default: on when stderr is a terminal and -q is not given)");
  app.add_flag("--json", opt.json, "print a report of the run as one JSON object on stdout (see kcopy(1))");
  app.add_flag("-n,--dry-run", opt.dry_run,
               "open and check everything as the copy would, print the plan, and write\n"
               "and create nothing (devices are opened read-only)");
  app.add_flag("--zero", opt.zero,
               "no SOURCE: make every region (all DESTs) read as zeroes, with the device's\n"
               "write-zeroes offload where it has one (dm_kcopyd_zero)");
  app.add_flag("--write-seq", opt.write_seq,
               "issue each destination's writes in ascending order (DM_KCOPYD_WRITE_SEQ, zoned\n"
               "devices); as in dm-kcopyd it turns --ignore-errors off");
  app.add_flag("--verify", opt.verify,
               "read every destination back and compare it with what was read from the source;\n"
               "a difference or a failed read-back sets that destination's bit");
  app.add_flag("--sparse", opt.sparse,
               "turn runs of zeroes in the source (whole 4 KiB pieces) into hole punches or\n"
               "write-zeroes on the destinations instead of data writes");
  app.add_option("--throttle", opt.throttle,
                 "keep the devices busy at most PERCENT of the time, over about a second\n"
                 "(dm_kcopyd_throttle; 1-100, default 100 = no throttle)")
      ->check(CLI::Range(1u, 100u))
      ->option_text("PERCENT");  // not CLI11's ":UINT in [1 - 100]"
  app.add_option("--max-rate", max_rate, "read at most RATE bytes per second from the source, e.g. 50M")
      ->type_name("RATE");
  CLI::Option* mapfile =
      app.add_option("--mapfile", opt.mapfile,
                     "record the copy in GNU ddrescue's mapfile FILE (finished, non-tried and bad areas,\n"
                     "bytes on the source); an existing FILE resumes the copy: only what is not\n"
                     "finished is copied (bad areas again only with --ignore-errors)")
          ->type_name("FILE");
  app.add_option("--mapfile-interval", opt.mapfile_interval,
                 "rewrite the mapfile at least every SECONDS while areas finish (default 30)")
      ->check(seconds_validator)
      ->needs(mapfile)
      ->option_text("SECONDS");  // not CLI11's "Needs: --mapfile" (the text says it)
  app.add_option("--nbd-timeout", opt.nbd_timeout,
                 "an NBD request that makes no progress for SECONDS fails with ETIMEDOUT (default 30)")
      ->check(seconds_validator)
      ->option_text("SECONDS");
  app.add_flag("-v,--verbose", verbose, "say more (repeat for more)");
  app.add_flag("-q,--quiet", quiet, "print errors only");
  app.set_version_flag("--version", std::string("kcopy ") + version);

  try {
    app.parse(argc, argv);
    const std::size_t sources = opt.zero ? 0 : 1;
    if (opt.regions.size() < sources + 1)
      throw Error(opt.zero ? "--zero needs at least one DEST (see --help)"
                           : "need a SOURCE and at least one DEST (see --help)");
    if (opt.regions.size() > sources + max_destinations)
      throw Error("at most " + std::to_string(max_destinations) + " destinations (one exit-status bit each), got " +
                  std::to_string(opt.regions.size() - sources));
    if (opt.zero && opt.sparse) throw Error("--sparse reads a source; --zero has none");
    if (opt.zero && !opt.mapfile.empty()) throw Error("--mapfile records a copy from a source; --zero has none");
    if (mapfile->count() && opt.mapfile.empty()) throw Error("--mapfile needs a FILE name");
    if (!max_rate.empty()) {
      opt.max_rate = parse_bytes(max_rate, "--max-rate");
      if (opt.max_rate == 0) throw Error("--max-rate '" + max_rate + "' is zero: give a rate of at least 1 byte/s");
    }
    opt.io_size = parse_bytes(io_size, "--io-size");
    opt.io_engine = parse_io_engine(io_engine);
    if (opt.io_size == 0 || opt.io_size % sector_size != 0)
      throw Error("--io-size '" + io_size + "' is not a positive whole number of 512-byte sectors");
    if (const long phys = ::sysconf(_SC_PHYS_PAGES); phys > 0 && opt.pages > static_cast<std::uint64_t>(phys) / 2)
      throw Error("--pages " + std::to_string(opt.pages) + " is more than half of this machine's memory (" +
                  std::to_string(phys) + " pages)");
    if (const std::uint64_t buffers = PagePool::capacity_for(opt.pages, opt.io_size); buffers > max_sub_jobs_in_flight)
      throw Error("--pages " + std::to_string(opt.pages) + " with --io-size '" + io_size + "' makes " +
                  std::to_string(buffers) + " sub-jobs in flight; at most " + std::to_string(max_sub_jobs_in_flight) +
                  " are allowed (use a larger --io-size or fewer --pages)");
    if (opt.io_size > opt.pages * page_size)
      throw Error("--io-size '" + io_size + "' is larger than the page pool (--pages " + std::to_string(opt.pages) +
                  " = " + std::to_string(opt.pages * page_size) + " bytes)");
  } catch (const CLI::CallForHelp&) {
    ParsedCommandLine out;
    out.output = app.help();
    out.output_name = "the help";
    return out;
  } catch (const CLI::CallForVersion&) {
    ParsedCommandLine out;
    out.output = app.version() + "\n";
    out.output_name = "the version";
    return out;
  } catch (const CLI::ExtrasError& e) {
    return refusal(unexpected_arguments(app.remaining(), e.what()), opt, argc, argv);
  } catch (const CLI::ParseError& e) {
    return refusal(std::string(e.what()) + " (see --help)", opt, argc, argv);
  } catch (const Error& e) {
    return refusal(e.what(), opt, argc, argv);
  }
  opt.verbosity = verbose - quiet;
  opt.pages_given = pages->count() > 0;
  opt.progress = progress_flag->count() ? progress : ::isatty(STDERR_FILENO) && quiet == 0;
  ParsedCommandLine out;
  out.options = std::move(opt);
  return out;
}

}  // namespace kcopy
