// mz, the front end. download, verify, cache, lock and mirror run here, in a program without LibTorch,
// so they start in milliseconds; every other command (and --help) is executed by `mz-torch`, installed
// next to this program, with the same arguments. So is `download` under torchrun (RANK and WORLD_SIZE
// set): one download per cache over c10d needs LibTorch (README "One download per cluster").
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
  for (const char* c : {"download", "verify", "cache", "lock", "mirror"})
    if (std::strcmp(arg, c) == 0) return true;
  return false;
}

bool in_torchrun() { return std::getenv("RANK") && std::getenv("WORLD_SIZE"); }

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
  if (argc < 2 || !is_hub_command(argv[1]) || (std::strcmp(argv[1], "download") == 0 && in_torchrun()))
    exec_torch_cli(argv);
  CLI::App app;
  mz::cli::add_hub_commands(app);
  return mz::cli::run(app, argc, argv);
}
