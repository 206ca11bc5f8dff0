// mz-torch: every mz command (list, info, download, verify, cache, lock, mirror, convert, forward, bench,
// predict, preprocess, doctor, tokenize, embed, generate, transcribe, build: every model and weight in the
// registry). `mz` executes it for every command that needs LibTorch.
#include <cstdlib>
#include <string>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include "modelzoo/optimize.h"
#include "registry/cli/cli.h"

int main(int argc, char** argv) {
  mz::keep_freed_memory();  // each forward reuses the last one's pages (mz doctor shows it)
  CLI::App app;
  // Every command that runs a model takes --threads (before or after its name), or MZ_NUM_THREADS.
  app.fallthrough();
  app.add_option_function<int>(
         "--threads",
         [](int n) {
           at::set_num_threads(n);
           ::setenv("MZ_NUM_THREADS", std::to_string(n).c_str(), 1);  // what mz doctor reports as the source
         },
         "LibTorch's intra-op threads (default: one per physical core; see mz doctor)")
      ->envname("MZ_NUM_THREADS")
      ->check(CLI::Range(1, 1024));
  mz::cli::add_model_commands(app);
  mz::cli::add_hub_commands(app);
  mz::cli::add_predict_commands(app);
  mz::cli::add_doctor_commands(app);
  mz::cli::add_text_commands(app);
  mz::cli::add_audio_commands(app);
  mz::cli::add_spec_commands(app);
  return mz::cli::run(app, argc, argv, [](const std::exception& e) {
    return dynamic_cast<const c10::Error*>(&e) ? 6 : 1;  // LibTorch's own errors
  });
}
