// A module that still loads the checkpoints of its old layout (README: "Old checkpoints").
#include <modelzoo/modelzoo.h>

// Version 1 of this block called its layer "proj"; version 2 calls it "out".
struct BlockImpl : torch::nn::Module, mz::CheckpointAdapter {
  BlockImpl() { out = register_module("out", mz::nn::Linear(4, 2)); }
  void adapt_checkpoint(mz::IncomingState& state, const std::string& prefix) override {
    for (const char* t : {"weight", "bias"}) state.rename(prefix + "proj." + t, prefix + "out." + t);
  }
  mz::nn::Linear out{nullptr};
};
TORCH_MODULE(Block);

int main() {
  mz::TensorDict v1;  // what a version-1 file holds
  v1.insert("proj.weight", torch::ones({2, 4}));
  v1.insert("proj.bias", torch::zeros({2}));
  Block block;
  mz::LoadReport report = mz::load_state(*block, v1);  // load_checkpoint(*block, "v1.pth") adapts the same way
  return report.ok() && report.adapted.size() == 2 ? 0 : 1;
}
