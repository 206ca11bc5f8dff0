// mz, the front end. download, verify and cache run here, in a program without LibTorch, so they
// start in milliseconds; every other command (and --help) is executed by `mz-torch`, installed next
// to this program, with the same arguments.
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "registry/cli/cli.h"

namespace {

bool is_hub_command(const char* arg) {
  for (const char* c : {"download", "verify", "cache"})
    if (std::strcmp(arg, c) == 0) return true;
  return false;
}

[[noreturn]] void exec_torch_cli(char** argv) {
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string path = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : std::string(argv[0]);
  path = path.substr(0, path.rfind('/') + 1) + "mz-torch";
  ::execv(path.c_str(), argv);
  std::cerr << "mz: cannot run " << path << ": " << std::strerror(errno) << "\n";
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !is_hub_command(argv[1])) exec_torch_cli(argv);
  CLI::App app;
  mz::cli::add_hub_commands(app);
  return mz::cli::run(app, argc, argv);
}
