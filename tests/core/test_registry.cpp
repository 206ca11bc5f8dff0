// Generic registry tests: every builder, every weight. Adding a model adds its checks.
#include <doctest/doctest.h>

#include <regex>
#include <set>

#include "modelzoo/modelzoo.h"
#include "registry/register.h"
#include "weights/records.h"

using namespace mz;

// The enums are generated from the records and the task comes from them too, so these hold by
// construction; the test guards the generator and the registration macro.
TEST_CASE("every builder has a weights enum whose DEFAULT is its one default record") {
  const auto models = list_models();
  REQUIRE(!models.empty());
  for (const ModelInfo* m : models) {
    CAPTURE(m->name);
    const auto weights = get_model_weights(m->name);
    REQUIRE(!weights.empty());
    int defaults = 0;
    for (const WeightsRecord* r : weights) {
      defaults += r->is_default;
      CHECK(r->model == m->name);
      CHECK(r->task == m->task);
      CHECK(r->enum_name == m->weights_enum);
    }
    CHECK(defaults == 1);
    CHECK(mz::detail::builtin_weights_enum(m->name) == m->weights_enum);  // what manifests are checked against
    CHECK(get_weight(m->default_weights()).is_default);
    CHECK(get_weight(m->weights_enum + ".DEFAULT").name() == m->default_weights());
  }
}

TEST_CASE("num_params is recomputed from the model built for each weight") {
  for (const WeightsRecord* r : all_weights()) {
    CAPTURE(r->name());
    ArchitectureOnly no_download;  // configure for the weights, load nothing
    Model m = get_model(r->model, r->name());
    CHECK(nn::num_params(*m.module) == r->meta.num_params);
  }
}

TEST_CASE("every builtin weight: name round-trips, hash_prefix is the URL's suffix, fields are sane") {
  const std::regex file_name(".*/[^/]*-([0-9a-f]{8,})\\.[A-Za-z]+$");  // torch.hub checks the whole run
  std::set<std::string> urls;
  for (const WeightsRecord* r : all_weights()) {
    if (r->source != "builtin") continue;  // other tests register local files too
    CAPTURE(r->name());
    CHECK(&get_weight(r->name()) == r);
    CHECK(record_from_json(to_json(*r), r->source).name() == r->name());
    std::smatch m;
    if (r->hash_prefix.empty()) {  // a file name without a hash (torchtext's, torchaudio's): torch.hub checks nothing
      CHECK(mz::data::hash_prefix_of(r->url).empty());
    } else {
      REQUIRE(std::regex_match(r->url, m, file_name));
      CHECK(m[1] == r->hash_prefix);
    }
    CHECK(urls.insert(r->url).second);  // no two weights share a file
    CHECK(r->meta.num_params > 0);
    CHECK(!r->transforms.preset.empty());
    if (r->task == "classification" && r->meta.categories) CHECK(r->meta.categories->size() == 1000);
  }
}

TEST_CASE("typed weights: values, DEFAULT alias, from_name") {
  CHECK(ResNet50_Weights::DEFAULT == ResNet50_Weights::IMAGENET1K_V2);
  CHECK(ResNet50_Weights::DEFAULT != ResNet50_Weights::IMAGENET1K_V1);
  CHECK(ResNet50_Weights::IMAGENET1K_V2.name() == "ResNet50_Weights.IMAGENET1K_V2");
  CHECK(ResNet50_Weights::from_name("ResNet50_Weights.IMAGENET1K_V2") == ResNet50_Weights::IMAGENET1K_V2);
  CHECK(ResNet50_Weights::from_name("IMAGENET1K_V1") == ResNet50_Weights::IMAGENET1K_V1);
  CHECK(ResNet50_Weights::from_name("DEFAULT") == ResNet50_Weights::IMAGENET1K_V2);
  CHECK(ResNet50_Weights::values().size() == 2);
  CHECK(ResNet50_Weights::IMAGENET1K_V2.transforms().resize_size == 232);
  CHECK(ResNet50_Weights::IMAGENET1K_V1.meta().metrics.at("ImageNet-1K").at("acc@1") == doctest::Approx(76.130));
  CHECK_THROWS_WITH_AS(ResNet50_Weights::from_name("ResNet18_Weights.IMAGENET1K_V1"),
                       "ResNet18_Weights.IMAGENET1K_V1: unknown weights for ResNet50_Weights", UsageError);
  CHECK_THROWS_WITH_AS(get_weight("ResNet50_Weights.IMAGENET1K_V3"),
                       doctest::Contains("ResNet50_Weights.IMAGENET1K_V3: unknown weights (did you mean: "
                                         "ResNet50_Weights.IMAGENET1K_V1"),
                       UsageError);
}

TEST_CASE("list_models: include and exclude globs, task filter") {
  auto names = [](const std::vector<const ModelInfo*>& ms) {
    std::vector<std::string> out;
    for (auto* m : ms) out.push_back(m->name);
    return out;
  };
  CHECK(names(list_models({"resnet1*"})) == std::vector<std::string>{"resnet101", "resnet152", "resnet18"});
  CHECK(names(list_models({"resnet*"}, {"resnet1*", "resnet3*"})) == std::vector<std::string>{"resnet50"});
  CHECK(list_models({}, {}, "no-such-task").empty());
  CHECK(list_models({}, {}, "classification").size() == list_models({"*"}, {}, "classification").size());
}

TEST_CASE("get_model: unknown names, options by kwarg name, contradictions with weights") {
  CHECK_THROWS_WITH_AS(get_model("resnet51"), doctest::Contains("resnet51: unknown model (did you mean: resnet50"),
                       UsageError);
  Model m = get_model("resnet18", "", {{"num_classes", 7}});
  m.module->eval();
  CHECK(m.forward(torch::randn({1, 3, 32, 32})).at("output").sizes() == torch::IntArrayRef{1, 7});
  CHECK_THROWS_WITH_AS(get_model("resnet18", "", {{"num_clases", 7}}),
                       doctest::Contains("resnet18: unknown option 'num_clases' (valid: groups, num_classes,"),
                       UsageError);
  CHECK_THROWS_AS(get_model("resnet18", "", {{"num_classes", "seven"}}), UsageError);
  CHECK_THROWS_WITH_AS(get_model("resnet18", "", {{"num_classes", 7.5}}),
                       "resnet18: option 'num_classes' cannot be 7.5 (it holds 7)", UsageError);
  CHECK_THROWS_WITH_AS(get_model("resnet18", "", {{"num_classes", 1.1e59}}),  // no float-to-integer overflow
                       "resnet18: option 'num_classes' cannot be 1.1e+59 (out of range)", UsageError);
  CHECK(get_model("resnet18", "", {{"num_classes", 7.0}}).forward(torch::randn({1, 3, 32, 32})).at("output").size(1) == 7);
  ArchitectureOnly no_download;
  CHECK_THROWS_WITH_AS(get_model("resnet50", "IMAGENET1K_V2", {{"num_classes", 10}}),
                       "ResNet50_Weights.IMAGENET1K_V2: option 'num_classes' must be 1000, got 10", UsageError);
  CHECK_THROWS_WITH_AS(resnext50_32x4d({}, {.groups = 8}), "resnext50_32x4d: option 'groups' must be 32, got 8",
                       UsageError);
  CHECK_THROWS_WITH_AS(resnet18({}, {.replace_stride_with_dilation = {true}}),
                       doctest::Contains("replace_stride_with_dilation should be empty or a 3-element list"),
                       UsageError);
}

TEST_CASE("a duplicate model name is an error") {
  CHECK_THROWS_WITH_AS(mz::detail::register_builder("resnet18", &resnet18),
                       "modelzoo: model 'resnet18' is registered twice", std::logic_error);
}

TEST_CASE("hash_prefix is the whole hex run of the file name, as torch.hub's HASH_REGEX finds it") {
  CHECK(data::hash_prefix_of("https://download.pytorch.org/models/resnet50-11ad3fa6.pth") == "11ad3fa6");
  CHECK(data::hash_prefix_of("https://download.pytorch.org/models/mnasnet0.5_top1_67.823-3ffadce67e.pth") ==
        "3ffadce67e");
  CHECK(data::hash_prefix_of("https://download.pytorch.org/models/quantized/resnet18_fbgemm_16fa66dd.pth").empty());
  CHECK(get_weight("MNASNet0_5_Weights.IMAGENET1K_V1").hash_prefix == "3ffadce67e");
  CHECK(get_weight("MNASNet1_0_Weights.IMAGENET1K_V1").hash_prefix == "f206786ef8");
  CHECK(get_weight("ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1").hash_prefix == "f707e7126e");
  CHECK(get_weight("ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1").hash_prefix == "5666bf0f80");
  // A manifest entry's prefix may be longer than 8 digits, and must agree with its sha256 throughout.
  nlohmann::json e = to_json(get_weight("ResNet18_Weights.IMAGENET1K_V1"));
  e["weight"] = "ResNet18_Weights.PREFIX_TEST";
  e["sha256"] = std::string(64, 'a');
  e["hash_prefix"] = "aaaaaaaaaa";
  CHECK(record_from_json(e, "m.json").hash_prefix == "aaaaaaaaaa");
  e["hash_prefix"] = "aaaaaaaaab";
  CHECK_THROWS_WITH_AS(record_from_json(e, "m.json"), doctest::Contains("hash_prefix does not match sha256"),
                       UsageError);
}

TEST_CASE("a weight entry's integers are JSON integers within range (found by tests/fuzz: 1e59 was undefined behaviour)") {
  nlohmann::json e = to_json(get_weight("ResNet18_Weights.IMAGENET1K_V1"));
  e["weight"] = "ResNet18_Weights.INTEGER_TEST";
  for (const auto& [path, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"/file_size", 1.1e59}, {"/file_size", -1}, {"/file_size", 2.5}, {"/meta/num_params", 1e300},
           {"/meta/num_params", 18446744073709551615ull}, {"/meta/min_size", {1, 0.5}}, {"/transforms/crop_size", 224.7}}) {
    CAPTURE(path);
    nlohmann::json bad = e;
    bad[nlohmann::json::json_pointer(path)] = value;
    CHECK_THROWS_WITH_AS(record_from_json(bad, "m.json"), doctest::Contains("must hold integers within range"), UsageError);
  }
  e["file_size"] = 1234;
  CHECK(record_from_json(e, "m.json").file_size == 1234u);
}
