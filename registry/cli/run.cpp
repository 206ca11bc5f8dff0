// What both mz programs do around their subcommands: the unknown-command check and one-line errors.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>

#include <iostream>
#include <string>

#include "modelzoo/errors.h"
#include "registry/cli/cli.h"

namespace mz::cli {
namespace {
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
}  // namespace

bool stderr_is_tty() { return ::isatty(2) == 1; }

void check_output_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw UsageError(path, "is a directory, not a file");
  const std::size_t slash = path.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw UsageError(path, "cannot be written: " + parent + " is not a directory");
}

std::string unreadable_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "cannot open: no such file";
  if (!S_ISREG(st.st_mode)) return S_ISDIR(st.st_mode) ? "is a directory, not a file" : "is not a regular file";
  return "";
}

int run(CLI::App& app, int argc, char** argv, int (*other_exit_code)(const std::exception&)) {
  app.name("mz");
  app.description("mz: torchvision's models and weights for LibTorch.\n"
                  "Environment: MZ_CACHE_DIR, MZ_OFFLINE=1, MZ_MIRROR, MZ_MANIFEST, MZ_LOCKFILE, MZ_CA_BUNDLE,\n"
                  "MZ_SHARED_CACHE, MZ_STORE_TIMEOUT (see README).");
  app.require_subcommand(1);
  // Options of the program (--lock) after the command's name too.
  std::function<void(CLI::App*)> fall_through = [&](CLI::App* a) {
    a->fallthrough();
    for (auto* sub : a->get_subcommands({})) fall_through(sub);
  };
  fall_through(&app);
  app.add_option_function<std::string>(
      "--lock", [](const std::string& path) { ::setenv("MZ_LOCKFILE", path.c_str(), 1); },
      "A lock file every weight must come from (as MZ_LOCKFILE; see mz lock)");
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  try {
    if (argc > 1 && argv[1][0] != '-') {
      std::string names;
      bool known = false;
      for (const auto* sub : app.get_subcommands({})) {
        names += (names.empty() ? "" : ", ") + sub->get_name();
        known = known || sub->get_name() == argv[1];
      }
      if (!known) throw UsageError("", std::string("unknown command '") + argv[1] + "' (commands: " + names + ")");
    }
    app.parse(argc, argv);
    return 0;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {  // one line, as every other failure
    std::cerr << "mz: " << first_line(e.what()) << " (see mz --help)\n";
    return 2;  // a usage error, as mz::UsageError
  } catch (const Error& e) {
    std::cerr << "mz: " << first_line(e.what()) << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "mz: " << first_line(e.what()) << "\n";
    return other_exit_code ? other_exit_code(e) : 1;
  }
}

}  // namespace mz::cli
