// A saved model's two files are untrusted input: a tampered or swapped model.safetensors, a missing, extra or
// mis-shaped tensor, a newer schema and a malformed config.json are typed errors naming the file. And
// save_pretrained refuses what it must not write.
#include <doctest/doctest.h>

#include <filesystem>

#include "tests/pretrained/pretrained_test.h"
#include "weights/hub/hub_impl.h"

using namespace mz;
using test::error_of;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const json kSpec = json::parse(R"({"_target_": "Sequential", "_args_": [
    {"_target_": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3},
    {"_target_": "BatchNorm2d", "num_features": 4},
    {"_target_": "ReLU"}]})");

// A freshly saved small model.
std::string saved(const std::string& name) {
  const std::string dir = test::fresh_dir(name);
  const spec::Built built = spec::build(kSpec);
  save_pretrained(built.model, built.spec, dir);
  return dir;
}

// Replaces model.safetensors by `tensors` and records its digest in config.json, as a consistent but
// wrong directory would have it.
void swap_tensors(const std::string& dir, const TensorDict& tensors) {
  save_safetensors(dir + "/model.safetensors", tensors);
  json config = test::read_config(dir);
  config["files"]["model.safetensors"] = {{"sha256", hub::detail::sha256_file(dir + "/model.safetensors")},
                                          {"size", fs::file_size(dir + "/model.safetensors")}};
  test::write_config(dir, config);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("model.safetensors changed after saving: a digest or size mismatch naming the file") {
  const std::string dir = saved("tampered");
  const std::string file = dir + "/model.safetensors";
  CHECK(error_of<CheckpointError>([&] { from_pretrained(dir); }) == "");
  std::string bytes = test::read_text(file);
  bytes[bytes.size() - 3] ^= 1;  // one bit of one parameter
  test::write_text(file, bytes);
  const std::string tampered = error_of<CheckpointError>([&] { from_pretrained(dir); });
  CHECK(starts_with(tampered, file + ": sha256 mismatch: expected "));
  CHECK(tampered.find("config.json's record") != std::string::npos);

  test::write_text(file, bytes + "x");
  CHECK(starts_with(error_of<CheckpointError>([&] { from_pretrained(dir); }), file + ": size mismatch"));
  fs::remove(file);
  CHECK(starts_with(error_of<CheckpointError>([&] { from_pretrained(dir); }), file + ": cannot open"));
}

TEST_CASE("strict load: a missing, extra or mis-shaped tensor is a LoadError naming the file and the key") {
  const std::string dir = saved("strict");
  const std::string file = dir + "/model.safetensors";
  const TensorDict good = read_checkpoint(file);

  TensorDict missing = good;
  missing.erase("1.running_var");
  swap_tensors(dir, missing);
  CHECK(error_of<LoadError>([&] { from_pretrained(dir); }) == file + ": 1 missing: 1.running_var");

  TensorDict extra = good;
  extra.insert("3.weight", torch::zeros({2}));
  swap_tensors(dir, extra);
  CHECK(error_of<LoadError>([&] { from_pretrained(dir); }) == file + ": 1 unexpected: 3.weight");

  TensorDict shape = good;
  shape["0.bias"] = torch::zeros({5});
  swap_tensors(dir, shape);
  CHECK(error_of<LoadError>([&] { from_pretrained(dir); }) == file + ": 1 mismatched: 0.bias: checkpoint [5] vs module [4]");

  swap_tensors(dir, good);
  CHECK(from_pretrained(dir).module->named_parameters().size() == 4);  // and back: it loads
}

TEST_CASE("config.json: a newer schema is refused, with the version that wrote it") {
  const std::string dir = saved("newer");
  json config = test::read_config(dir);
  config["schema"] = "modelzoo.pretrained/2";
  config["modelzoo_version"] = "9.0.0";
  config["adapters"] = json::array();  // what a newer version may add
  test::write_config(dir, config);
  CHECK(error_of<CheckpointError>([&] { from_pretrained(dir); }) ==
        dir + "/config.json: schema modelzoo.pretrained/2 is newer than this modelzoo reads (up to "
              "modelzoo.pretrained/1); it was written by modelzoo \"9.0.0\": upgrade modelzoo");
}

TEST_CASE("config.json: malformed is a CheckpointError naming it, never a crash") {
  const std::string dir = saved("malformed");
  const std::string file = dir + "/config.json";
  const json good = test::read_config(dir);
  const auto error = [&](const json& config) {
    test::write_config(dir, config);
    return error_of<CheckpointError>([&] { from_pretrained(dir); });
  };
  const auto with = [&](const std::string& key, const json& value) {
    json c = good;
    c[key] = value;
    return c;
  };
  const auto without = [&](const std::string& key) {
    json c = good;
    c.erase(key);
    return c;
  };
  CHECK(error(with("schema", "modelzoo.weights/1")) == file + ": not a modelzoo.pretrained config (schema \"modelzoo.weights/1\")");
  CHECK(error(with("schema", "modelzoo.pretrained/99999999999999999999")) ==
        file + ": not a modelzoo.pretrained config (schema \"modelzoo.pretrained/99999999999999999999\")");
  CHECK(error(with("adapters", json::array())) == file + ": unknown key 'adapters' for schema modelzoo.pretrained/1");
  CHECK(error(without("files")) == file + ": missing 'files'");
  CHECK(error(with("weights", "x")) == file + ": 'weights' has the wrong type: \"x\"");
  CHECK(error(with("weights", json::parse("[3]"))) == file + ": 'weights' must list objects with a \"name\", got 3");
  CHECK(starts_with(error(with("files", {{"model.safetensors", {{"sha256", "abc"}, {"size", 1}}}})), file + ": 'files' must give"));
  CHECK(starts_with(error(with("spec", json::parse(R"({"_target_": "Conv9d"})"))),
                    file + ": spec: model._target_: unknown target 'Conv9d'"));
  CHECK(error(with("spec", json::parse(R"({"_target_": "Linear", "in_features": 3, "out_features": -2})"))).rfind(
            file + ": spec: ", 0) == 0);
  CHECK(error(with("spec", json::array())) == file + ": 'spec' has the wrong type: []");
  CHECK(starts_with(error(with("preset", json::object())), file + ": 'preset': "));
  test::write_text(file, "{\"schema\": ");
  CHECK(starts_with(error_of<CheckpointError>([&] { from_pretrained(dir); }), file + ": not JSON: "));
  test::write_text(file, "[1, 2]");
  CHECK(error_of<CheckpointError>([&] { from_pretrained(dir); }) == file + ": not a JSON object");
  fs::remove(file);
  CHECK(!pretrained::is_dir(dir));
  CHECK(error_of<CheckpointError>([&] { from_pretrained(dir); }) == file + ": missing: not a saved model directory");
  CHECK(error_of<CheckpointError>([&] { from_pretrained(dir + "/nothing"); }).rfind(dir + "/nothing: not a directory", 0) == 0);
}

TEST_CASE("save_pretrained: refuses a non-empty unrelated directory unless asked, and a model its spec cannot load") {
  const spec::Built built = spec::build(kSpec);
  const std::string dir = test::fresh_dir("unrelated");
  fs::create_directories(dir);
  test::write_text(dir + "/notes.txt", "mine");
  CHECK(test::usage_error([&] { save_pretrained(built.model, built.spec, dir); }) ==
        dir + ": not empty and not a saved model; pass overwrite (mz build --force) to write into it");
  CHECK(!fs::exists(dir + "/model.safetensors"));
  SaveOptions overwrite;
  overwrite.overwrite = true;
  save_pretrained(built.model, built.spec, dir, overwrite);
  CHECK(test::read_text(dir + "/notes.txt") == "mine");
  CHECK(from_pretrained(dir).name == "Sequential");

  const json other = json::parse(R"({"_target_": "Sequential", "_args_": [
      {"_target_": "Conv2d", "in_channels": 3, "out_channels": 5, "kernel_size": 3}]})");
  const std::string refused = test::fresh_dir("refused");
  const std::string message = test::usage_error([&] { save_pretrained(built.model, other, refused); });
  CHECK(message == refused + ": the model does not have its spec's state dict, so it could not be loaded back: "
                             "0.weight has shape [4, 3, 3, 3], the spec's [5, 3, 3, 3]; 0.bias has shape [4], the spec's "
                             "[5]; unexpected 1.weight; unexpected 1.bias; unexpected 1.running_mean; and 2 more");
  CHECK(!fs::exists(refused));
  CHECK(test::usage_error([&] { save_pretrained(built.model, json::parse(R"({"_target_": "Nope"})"), refused); })
            .rfind("model._target_: unknown target 'Nope'", 0) == 0);
}
