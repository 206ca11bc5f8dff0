// mz doctor: what decides inference speed here (LibTorch's threads and parallel backend, the BLAS the
// process actually loaded, oneDNN) and where weights come from (cache, mirrors, lock file).
#include <dlfcn.h>
#include <link.h>

#include <cctype>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/version.h>

#include "modelzoo/hub.h"
#include "modelzoo/optimize.h"
#include "registry/cli/cli.h"

namespace mz::cli {
namespace {

// The shared objects loaded in this process whose file name mentions BLAS.
std::vector<std::string> loaded_blas() {
  std::vector<std::string> out;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        const std::string path = info->dlpi_name ? info->dlpi_name : "";
        const std::string file = path.substr(path.rfind('/') + 1);
        if (file.find("blas") != std::string::npos) static_cast<std::vector<std::string>*>(data)->push_back(path);
        return 0;
      },
      &out);
  return out;
}

// read(handle) on the libblas.so.3 this process has loaded (not loading it if it has not), else an empty string.
template <typename Read>
std::string from_loaded_blas(Read read) {
  void* handle = ::dlopen("libblas.so.3", RTLD_LAZY | RTLD_NOLOAD);
  if (!handle) return "";
  const std::string out = read(handle);
  ::dlclose(handle);
  return out;
}

// The kernels OpenBLAS chose for this CPU (openblas_get_corename), empty for another BLAS.
std::string openblas_core() {
  return from_loaded_blas([](void* handle) -> std::string {
    auto* corename = reinterpret_cast<char* (*)()>(::dlsym(handle, "openblas_get_corename"));
    const char* name = corename ? corename() : nullptr;
    return name ? name : "";
  });
}

// OpenBLAS running AVX2 kernels on a CPU with AVX-512: Debian's 0.3.21 does so on AMD's Zen 4 and 5, which it
// does not know; its Skylake-X kernels run there, at about twice the speed.
bool openblas_below_cpu(const std::string& core) {
  std::string lower;
  for (char c : core) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool avx2_kernels = lower == "haswell" || lower == "zen";
  return avx2_kernels && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

}  // namespace

std::string resolved_blas() {
  const std::string path = from_loaded_blas([](void* handle) -> std::string {
    link_map* map = nullptr;
    return ::dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name ? map->l_name : "";
  });
  if (path.empty()) return "";
  char real[PATH_MAX];
  return ::realpath(path.c_str(), real) ? std::string(real) : path;
}

namespace {

void run_doctor(bool as_json) {
  const std::string blas = resolved_blas();
  const bool reference = blas.find("openblas") == std::string::npos && blas.find("mkl") == std::string::npos &&
                         blas.find("blis") == std::string::npos && blas.find("atlas") == std::string::npos;
  const std::string core = openblas_core();
  const bool below_cpu = openblas_below_cpu(core);
  const char* threads_env = std::getenv("MZ_NUM_THREADS");
  const char* lock = std::getenv("MZ_LOCKFILE");
  const nlohmann::json out = {
      {"libtorch", TORCH_VERSION},
      {"threads", at::get_num_threads()},
      {"threads_source", threads_env ? "MZ_NUM_THREADS or --threads"
                                     : "LibTorch's default: one per physical core (set --threads N or MZ_NUM_THREADS)"},
      {"interop_threads", at::get_num_interop_threads()},
      {"parallel_backend", at::get_parallel_info()},
      {"blas", blas.empty() ? nlohmann::json(nullptr) : nlohmann::json(blas)},
      {"blas_loaded", loaded_blas()},
      {"reference_blas", reference},
      {"openblas_core", core.empty() ? nlohmann::json(nullptr) : nlohmann::json(core)},
      {"openblas_below_cpu", below_cpu},
      {"onednn", at::hasMKLDNN()},
      {"keeps_freed_memory", keeping_freed_memory()},
      {"cache_dir", hub::cache_dir()},
      {"mirrors", hub::mirrors()},
      {"lock", lock ? nlohmann::json(lock) : nlohmann::json(nullptr)},
  };
  if (as_json) {
    std::cout << out.dump(1) << "\n";
  } else {
    std::cout << "LibTorch          " << TORCH_VERSION << "\n"
              << "threads           " << at::get_num_threads() << " (" << out["threads_source"].get<std::string>()
              << ")\ninterop threads   " << at::get_num_interop_threads() << "\n"
              << "BLAS              " << (blas.empty() ? "libblas.so.3 not loaded" : blas)
              << (core.empty() ? "" : " (OpenBLAS kernels: " + core + ")") << "\n"
              << "oneDNN            " << (at::hasMKLDNN() ? "on" : "off") << "\n"
              << "malloc            "
              << (keeping_freed_memory() ? "keeps freed memory for reuse (mz::keep_freed_memory)"
                                         : "glibc's defaults or GLIBC_TUNABLES") << "\n"
              << "cache             " << hub::cache_dir() << "\n"
              << "mirrors           " << (hub::mirrors().empty() ? "none" : nlohmann::json(hub::mirrors()).dump()) << "\n"
              << "lock file         " << (lock ? lock : "none") << "\n"
              << "parallel backend\n"
              << at::get_parallel_info();
  }
  if (reference)
    std::cerr << "mz doctor: warning: LibTorch calls the reference BLAS (" << (blas.empty() ? "none loaded" : blas)
              << "); every Linear and matmul runs 35-60x slower than with OpenBLAS. Fix on Debian/Ubuntu: "
                 "apt-get install libopenblas0-openmp (not the pthread variant, whose threads fight LibTorch's "
                 "OpenMP pool); elsewhere install an OpenMP build of OpenBLAS as libblas.so.3.\n";
  if (below_cpu)
    std::cerr << "mz doctor: warning: OpenBLAS runs its AVX2 kernels (" << core << ") on this AVX-512 CPU, so Linear "
              << "and matmul run at about half speed. --optimize (mz::optimize_for_inference) runs the linear maps "
                 "through oneDNN instead. For the rest, start the process with OPENBLAS_CORETYPE=SkylakeX (OpenBLAS "
                 "0.3.22 and later choose these kernels on such CPUs themselves).\n";
}

}  // namespace

void add_doctor_commands(CLI::App& app) {
  auto as_json = std::make_shared<bool>(false);
  auto* doctor = app.add_subcommand("doctor", "Show what decides inference speed (threads, BLAS, oneDNN) and where "
                                              "weights come from (cache, mirrors, lock); warn about slow setups");
  doctor->add_flag("--json", *as_json, "JSON output");
  doctor->callback([as_json] { run_doctor(*as_json); });
}

}  // namespace mz::cli
