// mz: list, inspect, download, verify, convert and run every model and weight in the registry.
#include <unistd.h>

#include <iostream>

#include <c10/util/Exception.h>

#include "modelzoo/errors.h"
#include "registry/cli.h"

namespace mz::cli {
bool stderr_is_tty() { return ::isatty(2) == 1; }
}  // namespace mz::cli

namespace {
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mz: torchvision's models and weights for LibTorch.\n"
               "Environment: MZ_CACHE_DIR, MZ_OFFLINE=1, MZ_MIRROR, MZ_MANIFEST, MZ_CA_BUNDLE (see README)."};
  app.name("mz");
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  mz::cli::add_model_commands(app);
  mz::cli::add_hub_commands(app);
  mz::cli::add_predict_commands(app);
  try {
    if (argc > 1 && argv[1][0] != '-') {
      std::string names;
      bool known = false;
      for (const auto* sub : app.get_subcommands({})) {
        names += (names.empty() ? "" : ", ") + sub->get_name();
        known = known || sub->get_name() == argv[1];
      }
      if (!known) throw mz::UsageError("", std::string("unknown command '") + argv[1] + "' (commands: " + names + ")");
    }
    app.parse(argc, argv);
    return 0;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {  // one line, as every other failure
    std::cerr << "mz: " << first_line(e.what()) << " (see mz --help)\n";
    return e.get_exit_code() > 0 && e.get_exit_code() < 128 ? e.get_exit_code() : 2;
  } catch (const mz::Error& e) {
    std::cerr << "mz: " << first_line(e.what()) << "\n";
    return e.exit_code();
  } catch (const c10::Error& e) {
    std::cerr << "mz: " << first_line(e.what_without_backtrace()) << "\n";
    return 6;
  } catch (const std::exception& e) {
    std::cerr << "mz: " << first_line(e.what()) << "\n";
    return 1;
  }
}
