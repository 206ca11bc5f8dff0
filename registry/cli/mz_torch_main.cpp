// mz-torch: every mz command (list, info, download, verify, cache, convert, forward, bench, predict,
// preprocess, transcribe: every model and weight in the registry). `mz` executes it for every command that needs LibTorch.
#include <c10/util/Exception.h>

#include "registry/cli/cli.h"

int main(int argc, char** argv) {
  CLI::App app;
  mz::cli::add_model_commands(app);
  mz::cli::add_hub_commands(app);
  mz::cli::add_predict_commands(app);
  mz::cli::add_audio_commands(app);
  return mz::cli::run(app, argc, argv, [](const std::exception& e) {
    return dynamic_cast<const c10::Error*>(&e) ? 6 : 1;  // LibTorch's own errors
  });
}
