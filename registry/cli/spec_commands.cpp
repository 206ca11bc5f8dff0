// mz build: a model from a spec (README "Build models from specs"), saved with --output DIR (README "Save
// and load with config").
#include <iostream>

#include <torch/torch.h>

#include "modelzoo/pretrained.h"
#include "modelzoo/spec.h"
#include "registry/cli/cli.h"

namespace mz::cli {
namespace {

struct BuildArgs {
  std::string spec;
  std::vector<std::string> overrides;
  std::string output;
  SaveOptions save;
  bool print = false;
  int depth = -1;
};

std::int64_t count_params(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// One line per module: name (type) parameters, children indented, `depth` levels (-1: all).
void print_tree(const torch::nn::Module& m, const std::string& name, int indent, int depth) {
  std::string type = m.name();
  if (type.size() > 4 && type.compare(type.size() - 4, 4, "Impl") == 0) type.resize(type.size() - 4);
  std::cout << std::string(2 * indent, ' ') << name << " (" << type << "): " << count_params(m) << "\n";
  if (depth == 0) return;
  for (const auto& child : m.named_children()) print_tree(*child.value(), child.key(), indent + 1, depth - 1);
}

void run_build(const BuildArgs& a) {
  const spec::Built built = spec::build(spec::load(a.spec, a.overrides));
  const torch::nn::Module& model = *built.model.module;
  if (a.print) {
    std::cout << built.spec.dump(2) << "\n";
    print_tree(model, built.model.name, 0, a.depth);
  } else {
    std::cout << built.model.name << ": " << count_params(model) << " parameters\n";
  }
  for (const std::string& w : built.weights) std::cout << "weights: " << w << "\n";
  if (a.output.empty()) return;
  save_pretrained(built.model, built.spec, a.output, a.save);
  std::cout << a.output << "\n";
}

}  // namespace

void add_spec_commands(CLI::App& app) {
  auto a = std::make_shared<BuildArgs>();
  auto* build = app.add_subcommand(
      "build", "Build a model from a spec (JSON nodes {\"_target_\": NAME, kwarg: value}; see README \"Build models "
               "from specs\") and print its parameter count, or with --print the resolved spec and the module tree; "
               "with --output DIR, save it there");
  build->add_option("SPEC", a->spec, "A spec file (.json) or a registered spec's name")->required();
  build->add_option("OVERRIDES", a->overrides,
                    "KEY=VALUE: KEY a dotted path into the spec (num_classes, box_predictor.num_classes), VALUE "
                    "JSON or else a string");
  build->add_flag("--print", a->print, "Print the resolved spec, then the module tree with parameter counts");
  auto* output = build->add_option("--output", a->output,
                                   "Save the built model (its weights loaded) to this directory: config.json and "
                                   "model.safetensors, which mz forward, predict and info take in place of a model "
                                   "name; the last line printed is the directory");
  build->add_flag("--force", a->save.overwrite, "With --output: write into a non-empty directory that is not a saved "
                                                "model (its other files stay)")->needs(output);
  build->add_option("--preset-of", a->save.preset_of,
                    "With --output: the weight whose preset and categories mz predict DIR uses (default: the root "
                    "builder's own weights, if any)")->needs(output);
  build->add_option("--depth", a->depth, "With --print: levels of the module tree to show (default: all)")
      ->check(CLI::Range(0, 1000));
  build->callback([a] { run_build(*a); });
}

}  // namespace mz::cli
