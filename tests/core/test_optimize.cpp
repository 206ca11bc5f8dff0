// mz::optimize_for_inference beyond the classifiers and segmenters (which the parity tests run with
// --optimize): every detector, the text encoders and the speech encoder, at small sizes and random weights with
// randomised norm statistics. The optimised model's outputs must equal the original's within 1e-4
// (relative to each output's largest magnitude), and the norms that can fold must fold. A detector's outputs
// compared are its dense ones (mz::Model::dense), before NMS: at random init, SSDLite's class scores tie
// within 1e-6, so any reordering of float sums (folding, channels-last, prepacking alike) reorders its
// detections.
#include <doctest/doctest.h>

#include <set>
#include <tuple>

#include <torch/torch.h>

#include "builders/layers/amx.h"
#include "builders/layers/onednn.h"
#include "modelzoo/modelzoo.h"
#include "modelzoo/optimize.h"
#include "tests/support/support.h"

namespace {

using nlohmann::json;

struct Case {
  const char* model;
  json options;
  std::int64_t size;      // example_inputs' size: pixels, tokens or milliseconds
  bool folds;             // has norms after convolutions
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"fcn_resnet50", {{"weights_backbone", nullptr}}, 64, true},
      {"resnet50", json::object(), 64, true},
      {"roberta_base",
       {{"num_encoder_layers", 2}, {"embedding_dim", 64}, {"num_attention_heads", 4}, {"ffn_dimension", 128},
        {"vocab_size", 1000}},
       16, false},
      {"t5_small",
       {{"encoder_only", true}, {"num_encoder_layers", 2}, {"num_decoder_layers", 2}, {"embedding_dim", 64},
        {"num_attention_heads", 4}, {"ffn_dimension", 128}, {"vocab_size", 1000}},
       16, false},
      {"wav2vec2_base", {{"num_layers", 2}}, 300, false},
  };
  return all;
}

double relative_error(const mz::TensorDict& got, const mz::TensorDict& want) {
  double worst = 0;
  for (const auto& item : want) {
    REQUIRE(got.contains(item.key()));
    const torch::Tensor a = got.at(item.key()).to(torch::kDouble), b = item.value().to(torch::kDouble);
    REQUIRE(a.sizes() == b.sizes());
    if (!b.numel()) continue;
    worst = std::max(worst, (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-12));
  }
  return worst;
}

}  // namespace

namespace {

// optimize_for_inference on `model` (random weights, norm statistics randomised here) keeps its outputs (a
// detector's dense ones) within 1e-4, folds norms if the model has any after a convolution, and leaves no
// parameter requiring grad.
void check_optimize(mz::Model& model, const mz::TensorDict& inputs, bool folds) {
  mz::test::randomize_norms(*model.module);
  model.module->eval();
  const auto& run = model.dense ? model.dense : model.run;
  mz::TensorDict before;
  {
    torch::NoGradGuard no_grad;
    before = run(inputs);
  }
  const mz::OptimizeReport report = mz::optimize_for_inference(model, inputs);
  CHECK(report.max_relative_error <= 1e-4);
  if (folds) CHECK(report.folded > 0);
  for (const auto& p : model.module->parameters()) CHECK_FALSE(p.requires_grad());
  torch::InferenceMode guard;
  CHECK(relative_error(run(inputs), before) <= 1e-4);
}

}  // namespace

TEST_CASE("optimize_for_inference keeps the outputs of a classifier, a segmenter, text and speech encoders") {
  for (const Case& c : cases()) {
    const std::string name = c.model;
    CAPTURE(name);
    torch::manual_seed(0);
    mz::Model model = mz::get_model(c.model, "", c.options);
    check_optimize(model, mz::model_info(c.model).example_inputs(1, c.size), c.folds);
  }
}

// Every detector of the registry, at 96 px (SSDs at their fixed size). Its dense outputs must depend on every one of
// its parameters (gradients), so that comparing them checks the whole model: no learned layer may be missing.
TEST_CASE("every detector: its dense outputs reach every parameter, and optimize_for_inference keeps them") {
  const auto detectors = mz::list_models({}, {}, "detection");
  CHECK(detectors.size() >= 10);
  for (const mz::ModelInfo* info : detectors) {
    CAPTURE(info->name);
    json options = {{"weights_backbone", nullptr}};
    if (info->default_options.contains("min_size")) options["min_size"] = 96, options["max_size"] = 96;
    // The R-CNNs' box heads run on as many boxes as the RPN passes on (1,000 by default: most of this test's time).
    const bool rcnn = info->default_options.contains("rpn_post_nms_top_n_test");
    if (rcnn) options["rpn_post_nms_top_n_test"] = 20;
    torch::manual_seed(0);
    mz::Model model = info->build("", options);
    REQUIRE(model.dense);
    model.module->eval();
    const mz::TensorDict inputs = info->example_inputs(1, 96);
    for (auto& p : model.module->parameters()) p.requires_grad_(true);
    torch::Tensor loss = torch::zeros({});
    const mz::TensorDict dense = model.dense(inputs);
    if (rcnn) CHECK(dense.at("roi_heads.class_logits").size(0) == 20);
    for (const auto& item : dense) loss = loss + (item.value() * torch::randn_like(item.value())).sum();
    loss.backward();
    for (const auto& p : model.module->named_parameters()) {
      CAPTURE(p.key());
      CHECK((p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0));
      p.value().mutable_grad() = torch::Tensor();
    }
    std::int64_t norms = 0;
    mz::nn::for_each<mz::nn::FoldableNorm>(*model.module, [&](mz::nn::FoldableNorm&) { ++norms; });
    check_optimize(model, inputs, norms > 0);
  }
}

// The before/after comparison itself: a NaN where the original output had a number (or another shape or type) is a
// failure that restores the model and throws, never a zero error; a NaN or infinity the original output had too at
// that place is no difference.
TEST_CASE("optimize_for_inference's comparison: NaN, infinities, shapes and types") {
  torch::manual_seed(0);
  auto model = mz::resnet18();
  mz::test::randomize_norms(*model);
  model->eval();
  const torch::Tensor x = torch::randn({1, 3, 32, 32});
  const auto outputs = [&](const torch::Tensor& extra) {
    mz::TensorDict d;
    d.insert("logits", model->forward(x));
    d.insert("extra", extra);
    return d;
  };
  const torch::Tensor special = torch::tensor({1.0f, NAN, INFINITY, -INFINITY, 2.0f});
  const auto report = mz::optimize_for_inference(*model.ptr(), [&] { return outputs(special); });
  CHECK(report.folded > 0);
  CHECK(report.max_relative_error <= 1e-4);

  int calls = 0;  // the first call is the reference; every later one differs from it in `extra`
  const auto check_refused = [&](const torch::Tensor& want, const torch::Tensor& got) {
    CAPTURE(want);
    CAPTURE(got);
    calls = 0;
    torch::manual_seed(0);
    auto fresh = mz::resnet18();
    fresh->eval();
    model = fresh;
    const torch::Tensor plain = [&] {  // as the check below runs it: without autograd
      torch::NoGradGuard no_grad;
      return model->forward(x);
    }();
    CHECK_THROWS_AS(mz::optimize_for_inference(*model.ptr(), [&] { return outputs(calls++ ? got : want); }), mz::Error);
    torch::NoGradGuard no_grad;
    CHECK(torch::equal(model->forward(x), plain));  // restored
  };
  check_refused(torch::tensor({1.0f, 2.0f}), torch::tensor({1.0f, NAN}));
  check_refused(torch::tensor({1.0f, NAN}), torch::tensor({1.0f, 2.0f}));
  check_refused(torch::tensor({1.0f, INFINITY}), torch::tensor({1.0f, 2.0f}));
  check_refused(torch::tensor({1.0f, 2.0f}), torch::tensor({1.0f, 2.0f, 3.0f}));
  check_refused(torch::tensor({1.0f, 2.0f}), torch::tensor({1.0, 2.0}).to(torch::kDouble));
}

TEST_CASE("prepacked convolutions give the unpacked numbers, and a changed weight is never read stale") {
  torch::manual_seed(0);
  auto conv = mz::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3).padding(1).stride(2));
  conv->reset_parameters();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 8, 17, 13});
  const torch::Tensor plain = conv->forward(x);
  conv->prepack();
  REQUIRE(conv->prepacked());
  CHECK(torch::allclose(conv->forward(x), plain, 1e-5, 1e-5));
  conv->weight.mul_(2);  // e.g. a LoRA merge after optimising: the packed copy is stale and must not be used
  CHECK(torch::allclose(conv->forward(x), 2 * plain - conv->bias.reshape({1, -1, 1, 1}), 1e-4, 1e-4));
}

TEST_CASE("convolutions left in oneDNN's blocked layout give the same numbers and ordinary outputs") {
  if (!at::hasMKLDNN()) return;
  const auto block_all = [](torch::nn::Module& m) {
    mz::nn::for_each<mz::nn::Conv2dImpl>(m, [](mz::nn::Conv2dImpl& conv) { conv.prepack(), conv.blocked = true; });
  };
  // ReLU, additions and pooling read blocked tensors, Linear gives an ordinary output: the same numbers. The other
  // activations and squeeze-and-excitation's scaling go through oneDNN's own kernels: within the contract's 1e-4.
  for (const auto& [name, tolerance] :
       {std::pair{"resnet18", 1e-5}, {"resnext50_32x4d", 1e-5}, {"mobilenet_v3_small", 1e-4}, {"efficientnet_b0", 1e-4}}) {
    const std::int64_t size = 64;
    CAPTURE(name);
    torch::manual_seed(0);
    mz::Model model = mz::get_model(name);
    mz::test::randomize_norms(*model.module);
    model.module->eval();
    const mz::TensorDict inputs = mz::model_info(name).example_inputs(1, size);
    mz::OptimizeOptions plain;
    plain.prepack = false;
    mz::optimize_for_inference(model, inputs, plain);  // folds; the forced layout below is then the only change
    torch::NoGradGuard no_grad;
    const mz::TensorDict before = model.run(inputs);
    block_all(*model.module);
    const mz::TensorDict after = model.run(inputs);
    for (const auto& item : after) CHECK_FALSE(item.value().is_mkldnn());
    CHECK(relative_error(after, before) <= tolerance);
    mz::TensorDict made_under_inference_mode;  // as mz bench's are, then used outside it
    {
      c10::InferenceMode guard;
      for (const auto& item : inputs) made_under_inference_mode.insert(item.key(), item.value().clone());
    }
    CHECK(relative_error(model.run(made_under_inference_mode), before) <= tolerance);
  }
  // An operator without any kernel for them gets an ordinary tensor (the fallback); one that would write into a
  // blocked tensor is refused, not silently lost.
  auto conv = mz::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1));
  conv->reset_parameters();
  conv->prepack();
  conv->blocked = true;
  torch::NoGradGuard no_grad;
  const torch::Tensor y = conv->forward(torch::randn({1, 3, 8, 8}));
  REQUIRE(y.is_mkldnn());
  CHECK(torch::allclose(torch::hardswish(y), torch::hardswish(y.to_dense())));
  CHECK_THROWS_WITH(torch::hardswish_(const_cast<torch::Tensor&>(y)), doctest::Contains("blocked layout"));
}

TEST_CASE("a blocked convolution fuses the activation and the residual sum, with the step-by-step numbers") {
  if (!at::hasMKLDNN()) return;
  using mz::ops::Act;
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  struct Shape {
    std::int64_t in, out, kernel, stride, groups;
  };
  for (const Shape& s : {Shape{8, 16, 3, 1, 1}, Shape{16, 16, 3, 2, 16}, Shape{16, 32, 1, 1, 1}}) {
    auto conv = mz::nn::Conv2d(
        torch::nn::Conv2dOptions(s.in, s.out, s.kernel).stride(s.stride).padding(s.kernel / 2).groups(s.groups));
    conv->reset_parameters();
    const torch::Tensor x = torch::randn({2, s.in, 9, 9});
    const torch::Tensor plain = conv->forward(x);
    for (const auto act : {std::optional<Act>(), std::optional(Act::ReLU), std::optional(Act::ReLU6),
                           std::optional(Act::Hardswish), std::optional(Act::Hardsigmoid), std::optional(Act::SiLU),
                           std::optional(Act::Sigmoid), std::optional(Act::GELU), std::optional(Act::Tanh)}) {
      for (const bool with_residual : {false, true}) {
        CAPTURE(s.groups);
        const std::string act_name = act ? mz::ops::act_name(*act) : "none";
        CAPTURE(act_name);
        CAPTURE(with_residual);
        const torch::Tensor residual = with_residual ? torch::randn_like(plain) : torch::Tensor();
        torch::Tensor want = with_residual ? plain + residual : plain.clone();
        if (act) want = mz::ops::activate(*act, want);
        conv->unpack();
        CHECK(conv->fused(x, act, residual).defined() == false);  // not blocked: the caller goes step by step
        conv->prepack();
        conv->blocked = true;
        // The residual in either kind: an ordinary tensor, or an mkldnn tensor (plain layout; a blocked residual
        // comes with the ResNet rows of the blocked-layout test).
        for (const torch::Tensor& r : {residual, with_residual ? residual.to_mkldnn() : residual}) {
          const torch::Tensor fused = conv->fused(x, act, r);
          CHECK(fused.defined() == (act != Act::Hardsigmoid));  // oneDNN 2.6 has no Hardsigmoid
          const torch::Tensor got = mz::ops::conv_norm_act(*conv, nullptr, x, act, r);
          CHECK(torch::allclose(got.is_mkldnn() ? got.to_dense() : got, want, 1e-4, 1e-5));
          if (fused.defined()) CHECK(torch::allclose(fused.to_dense(), want, 1e-4, 1e-5));
        }
      }
    }
  }
}

namespace {

double max_relative(const torch::Tensor& got, const torch::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(want.abs().max().item<double>(), 1e-12);
}

// Counts, on this thread while it lives, the calls of the RECORD_FUNCTION scope "mz::onednn::linear".
class CountOneDnnLinear {
 public:
  CountOneDnnLinear()
      : handle_(at::addThreadLocalCallback(at::RecordFunctionCallback(
            [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
              if (std::string(fn.name()) == "mz::onednn::linear") ++calls();
              return nullptr;
            }))) {
    calls() = 0;
  }
  ~CountOneDnnLinear() { at::removeCallback(handle_); }
  static int& calls() {
    static thread_local int n = 0;
    return n;
  }

 private:
  at::CallbackHandle handle_;
};

// Runs `linear` (48 -> 40) without autograd on inputs of several leading shapes, empty included, and checks
// torch::linear's numbers; returns how many of the calls ran oneDNN's matmul on the weight as it is.
int check_shapes(mz::nn::Linear& linear) {
  torch::NoGradGuard no_grad;
  int plain_onednn = 0;
  for (const auto& shape :
       std::vector<std::vector<std::int64_t>>{{48}, {1, 48}, {7, 48}, {2, 5, 48}, {0, 48}, {3, 7, 2, 48}}) {
    CAPTURE(shape);
    const torch::Tensor x = torch::randn(shape);
    const torch::Tensor want = torch::linear(x, linear->weight, linear->bias);
    CountOneDnnLinear count;
    const torch::Tensor got = linear(x);
    plain_onednn += count.calls();
    REQUIRE(got.sizes() == want.sizes());
    if (want.numel()) CHECK(max_relative(got, want) <= 1e-5);
  }
  return plain_onednn;
}

}  // namespace

// nn::PackedWeight runs a linear map through oneDNN on a copy of its weight: it must give torch::linear's numbers,
// for any leading shape, with or without a bias, and must never use a copy that is out of date.
TEST_CASE("nn::PackedWeight: torch::linear's outputs, and never a stale copy") {
  if (!at::hasMKLDNN()) return;
  torch::manual_seed(0);
  for (bool bias : {true, false}) {
    CAPTURE(bias);
    mz::nn::Linear linear(torch::nn::LinearOptions(48, 40).bias(bias));
    mz::nn::reset_parameters(*linear);
    for (auto& p : linear->parameters()) p.requires_grad_(false);
    linear->packed.pack(linear->weight);
    REQUIRE(linear->packed);
    CHECK(check_shapes(linear) == 0);  // the packed copy, every time
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::randn({5, 48});
    CHECK(max_relative(linear(x.t().contiguous().t()), torch::linear(x, linear->weight, linear->bias)) <= 1e-5);
    // A changed weight: the copy is not used.
    linear->weight.mul_(-2);
    CHECK(max_relative(linear(x), torch::linear(x, linear->weight, linear->bias)) <= 1e-5);
    linear->packed.pack(linear->weight);
    linear->weight.set_data(torch::randn({40, 48}));
    CHECK(max_relative(linear(x), torch::linear(x, linear->weight, linear->bias)) <= 1e-5);
    // An adapter's delta: the adapted weight.
    linear->packed.pack(linear->weight);
    const torch::Tensor delta = torch::randn({40, 48});
    linear->delta = [delta] { return delta; };
    CHECK(max_relative(linear(x), torch::linear(x, linear->weight + delta, linear->bias)) <= 1e-5);
    linear->delta = nullptr;
    CHECK(max_relative(linear(x), torch::linear(x, linear->weight, linear->bias)) <= 1e-5);
  }
  // Unpacked: torch::linear's outputs, the bias fused into the product for contiguous inputs of 4-d and more.
  for (bool bias : {true, false}) {
    mz::nn::Linear linear(torch::nn::LinearOptions(24, 16).bias(bias));
    mz::nn::reset_parameters(*linear);
    for (const auto& shape : std::vector<std::vector<std::int64_t>>{{2, 3, 5, 24}, {2, 1, 3, 4, 24}, {0, 3, 2, 24}}) {
      CAPTURE(bias);
      CAPTURE(shape);
      const torch::Tensor x = torch::randn(shape), strided = torch::randn(shape).transpose(1, 2);
      for (const torch::Tensor& input : {x, strided}) {
        const torch::Tensor want = torch::linear(input, linear->weight, linear->bias), got = linear(input);
        REQUIRE(got.sizes() == want.sizes());
        if (want.numel()) CHECK(max_relative(got, want) <= 1e-5);
      }
    }
  }
  // Gradients: torch::linear, so they flow.
  mz::nn::Linear linear(8, 4);
  mz::nn::reset_parameters(*linear);
  linear->packed.pack(linear->weight);
  const torch::Tensor x = torch::randn({3, 8}, torch::requires_grad());
  linear(x).sum().backward();
  CHECK(x.grad().defined());
  CHECK(linear->weight.grad().defined());
  // And through the fused 4-d path, with torch::linear's gradients.
  const torch::Tensor x4 = torch::randn({2, 3, 2, 8}, torch::requires_grad());
  linear->weight.mutable_grad() = torch::Tensor();
  const torch::Tensor g = torch::randn({2, 3, 2, 4});
  (linear(x4) * g).sum().backward();
  const torch::Tensor want_x = x4.grad().clone(), want_w = linear->weight.grad().clone();
  x4.mutable_grad() = torch::Tensor();
  linear->weight.mutable_grad() = torch::Tensor();
  (torch::linear(x4, linear->weight, linear->bias) * g).sum().backward();
  CHECK(max_relative(want_x, x4.grad()) <= 1e-5);
  CHECK(max_relative(want_w, linear->weight.grad()) <= 1e-5);
}

// bf16x3 splits each operand into bfloat16 parts and sums three products in float on AMX's tiles: checked against
// those three products computed in float64 from parts made by LibTorch's own conversion (so a part dropped, doubled
// or paired wrongly fails), for shapes that fill the kernel's 32 x 32 blocks and shapes that leave them partial; and
// against the exact product, 30x closer than one bfloat16 product gets. On CPUs without AMX the copy is float. The
// split itself on any CPU.
TEST_CASE("nn::PackedWeight split into bfloat16 parts (bf16x3): the three products") {
  if (!at::hasMKLDNN()) return;
  torch::manual_seed(0);
  const auto hi = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat); };
  const auto lo = [&](const torch::Tensor& t) { return hi(t - hi(t)); };
  // The split itself, with AVX-512 where the CPU has it and without: the same bits, the parts of LibTorch's rounding.
  for (std::int64_t in : {1, 16, 50, 771}) {
    CAPTURE(in);
    const torch::Tensor x = torch::randn({5, in}) * torch::exp(4 * torch::randn({5, in}));
    const torch::Tensor split = mz::amx::split_bf16x3(x), portable = mz::amx::split_bf16x3(x, true);
    CHECK(torch::equal(split, portable));
    CHECK(torch::equal(split.to(torch::kFloat), torch::stack({hi(x), lo(x)})));
  }
  // in, out: 50 and 40 leave partial blocks (and 50 is not a multiple of AVX-512's 16); 64 and 96 fill them. With
  // 2100 inputs the kernel takes 200 rows in chunks of 96, and 600 rows in three blocks of 704 inputs (the last one
  // partial), each split as it comes, in chunks of 352 rows, the sums kept between blocks.
  for (const auto& [in, out, bias] : std::vector<std::tuple<std::int64_t, std::int64_t, bool>>{
           {50, 40, true}, {50, 40, false}, {64, 96, true}, {96, 33, true}, {2100, 40, true}}) {
    CAPTURE(in);
    CAPTURE(out);
    CAPTURE(bias);
    mz::nn::Linear linear(torch::nn::LinearOptions(in, out).bias(bias));
    mz::nn::reset_parameters(*linear);
    for (auto& p : linear->parameters()) p.requires_grad_(false);
    linear->packed.pack(linear->weight, true);
    const torch::Tensor w = linear->weight.to(torch::kDouble);
    const torch::Tensor w_hi = hi(linear->weight).to(torch::kDouble), w_lo = lo(linear->weight).to(torch::kDouble);
    torch::NoGradGuard no_grad;
    const std::vector<std::vector<std::int64_t>> shapes{{in},    {1, in},  {7, in},     {2, 5, in},
                                                        {0, in}, {64, in}, {3, 33, in}, {2, 100, in},
                                                        {3, 200, in}};
    for (const auto& shape : shapes) {
      CAPTURE(shape);
      const torch::Tensor x = torch::randn(shape);
      const torch::Tensor x_hi = hi(x).to(torch::kDouble), x_lo = lo(x).to(torch::kDouble);
      const torch::Tensor b = bias ? linear->bias.to(torch::kDouble) : torch::Tensor();
      const torch::Tensor three = torch::linear(x_hi, w_hi, b) + torch::linear(x_hi, w_lo) + torch::linear(x_lo, w_hi);
      const torch::Tensor exact = torch::linear(x.to(torch::kDouble), w, b);
      const torch::Tensor one = torch::linear(x_hi, w_hi, b);
      const torch::Tensor got = linear(x).to(torch::kDouble);
      REQUIRE(got.sizes() == exact.sizes());
      if (!exact.numel()) continue;
      if (mz::amx::available()) {
        CHECK(max_relative(got, three) <= 1e-6);
        CHECK(max_relative(got, exact) <= max_relative(one, exact) / 30);
      } else {
        CHECK(max_relative(got, exact) <= 1e-6);
      }
    }
  }
}

// A split map applies ReLU and GELU as its kernel writes each output block (GELU's erf by a polynomial, and e^x, of
// its own): torch's GELU in float64 of the map's own output, element by element, from -12 to 12 (where erf
// saturates), near zero and beyond, with and without a bias; within 1e-6 of each value, or 1e-7 of the input (erf's
// 1.5e-7 absolute error, halved, times x).
TEST_CASE("nn::PackedWeight split into bfloat16 parts: ReLU and GELU in the kernel's pass") {
  if (!mz::amx::available()) return;
  mz::nn::Linear linear(48, 48);
  torch::NoGradGuard no_grad;
  linear->weight.copy_(torch::eye(48));
  linear->packed.pack(linear->weight, true);
  const torch::Tensor x = torch::cat({torch::linspace(-12, 12, 4044), torch::linspace(-1e-3, 1e-3, 31),
                                      torch::tensor({0.f, 1e-30f, -1e-30f, 88.f, -88.f})})
                              .view({-1, 48});  // 85 rows
  for (float bias : {0.f, 0.5f}) {
    CAPTURE(bias);
    linear->bias.fill_(bias);
    const torch::Tensor y = linear(x).to(torch::kDouble);
    CHECK(max_relative(y, x.to(torch::kDouble) + bias) <= 1e-5);
    const auto close = [&](const torch::Tensor& got, const torch::Tensor& want) {
      return ((got.to(torch::kDouble) - want).abs() <= want.abs() * 1e-6 + y.abs() * 1e-7 + 1e-7).all().item<bool>();
    };
    CHECK(close(linear->activated(x, mz::ops::Act::GELU), torch::gelu(y)));
    CHECK(close(linear->activated(x, mz::ops::Act::ReLU), torch::relu(y)));
  }
}

// A Linear followed by an Activation in a SequentialBlock runs as one (the activation in oneDNN's matmul pass where
// it has the activation): the numbers of the two steps, on every path a linear map takes.
TEST_CASE("nn::Linear::activated: the activation fused into the matmul, on every path") {
  if (!at::hasMKLDNN()) return;
  torch::manual_seed(0);
  using mz::ops::Act;
  for (Act act : {Act::GELU, Act::ReLU, Act::SiLU, Act::Hardsigmoid}) {  // Hardsigmoid: no oneDNN kernel, after
    CAPTURE(mz::ops::act_name(act));
    mz::nn::Linear linear(50, 40);
    mz::nn::reset_parameters(*linear);
    const torch::Tensor x = torch::randn({3, 7, 50});
    const auto want = [&] { return mz::ops::activate(act, torch::linear(x, linear->weight, linear->bias)); };
    {
      torch::NoGradGuard no_grad;
      for (int packing : {0, 1, 2}) {  // unpacked, packed, packed split into bfloat16 parts
        CAPTURE(packing);
        if (packing) linear->packed.pack(linear->weight, packing == 2);
        CHECK(max_relative(linear->activated(x, act), want()) <= (packing == 2 ? 2e-5 : 1e-5));
        linear->packed.reset();
      }
    }
    // With autograd: torch::linear then the activation, and the gradients flow.
    const torch::Tensor xg = x.clone().requires_grad_(true);
    const torch::Tensor y = linear->activated(xg, act);
    CHECK(max_relative(y.detach(), want()) <= 1e-5);
    y.sum().backward();
    CHECK(xg.grad().defined());
    CHECK(linear->weight.grad().defined());
  }
  // A SequentialBlock fuses a Linear with the Activation after it, and only that: the same numbers as step by step.
  mz::ops::SequentialBlock block(mz::nn::Linear(16, 32), mz::ops::Activation(Act::GELU), mz::nn::Linear(32, 8),
                                 mz::ops::Activation(Act::ReLU), torch::nn::Dropout(0.5),
                                 mz::ops::Activation(Act::Tanh));
  for (auto& m : block->modules(false))
    if (auto* l = dynamic_cast<mz::nn::LinearImpl*>(m.get())) mz::nn::reset_parameters(*l);
  block->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({5, 16});
  torch::Tensor want = x;
  for (auto& m : *block) want = m.forward(want);
  CHECK(max_relative(block->forward(x), want) <= 1e-5);
}

// An unpacked linear map that needs no gradient runs oneDNN's matmul on the weight as it is: torch::linear's numbers
// for any leading shape, with or without a bias. Inputs it does not take (strided, double) and gradients go to
// torch::linear.
TEST_CASE("nn::Linear unpacked without autograd: oneDNN's matmul on the weight as it is") {
  if (!at::hasMKLDNN()) return;
  torch::manual_seed(0);
  for (bool bias : {true, false}) {
    CAPTURE(bias);
    mz::nn::Linear linear(torch::nn::LinearOptions(48, 40).bias(bias));
    mz::nn::reset_parameters(*linear);
    CHECK(check_shapes(linear) == 6);
    torch::NoGradGuard no_grad;
    const torch::Tensor strided = torch::randn({5, 48}).t().contiguous().t();
    CountOneDnnLinear count;
    CHECK(max_relative(linear(strided), torch::linear(strided, linear->weight, linear->bias)) <= 1e-5);
    linear->to(torch::kDouble);
    const torch::Tensor wide = torch::randn({5, 48}, torch::kDouble);
    CHECK(max_relative(linear(wide), torch::linear(wide, linear->weight, linear->bias)) <= 1e-12);
    CHECK(count.calls() == 0);
  }
  mz::nn::Linear linear(8, 4);
  mz::nn::reset_parameters(*linear);
  CountOneDnnLinear count;
  const torch::Tensor x = torch::randn({3, 8}, torch::requires_grad());
  linear(x).sum().backward();
  CHECK(count.calls() == 0);
  CHECK(x.grad().defined());
  {
    torch::NoGradGuard no_grad;  // and the same weight without autograd
    CHECK(max_relative(linear(x), torch::linear(x, linear->weight, linear->bias)) <= 1e-5);
  }
  CHECK(count.calls() == 1);
}

// The attention product through oneDNN: softmax(scale · q @ k^T + bias) @ v in float64 on strided views of one
// projection (as ViT's, Swin's and MaxViT's heads are), with biases that broadcast, padded keys at -inf, more keys
// than queries; the heads' join free. The steps where oneDNN does not apply: a gradient wanted, dropout in training.
TEST_CASE("ops::attention through oneDNN: float64's numbers on strided views; the steps where it does not apply") {
  if (!at::hasMKLDNN()) return;
  torch::manual_seed(0);
  const auto reference = [](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& bias, double scale) {
    auto scores = torch::matmul(q.to(torch::kDouble), k.to(torch::kDouble).transpose(-2, -1)) * scale;
    if (bias.defined()) scores = scores + bias.to(torch::kDouble);
    return torch::matmul(torch::softmax(scores, -1), v.to(torch::kDouble)).to(torch::kFloat);
  };
  // [B, T, 3, heads, head_dim] -> q, k, v [B, heads, T, head_dim]; 5-d: [B, windows, T, 3, heads, head_dim].
  const torch::Tensor qkv4 = torch::randn({2, 7, 3 * 4 * 8}).view({2, 7, 3, 4, 8}).permute({2, 0, 3, 1, 4});
  const torch::Tensor qkv5 = torch::randn({2, 3, 6, 3 * 2 * 8}).view({2, 3, 6, 3, 2, 8}).permute({3, 0, 1, 4, 2, 5});
  const torch::Tensor pad = torch::zeros({2, 1, 1, 7}).masked_fill_(torch::arange(7).view({1, 1, 1, 7}) >=
                                                                        torch::tensor({5, 7}).view({2, 1, 1, 1}),
                                                                    -std::numeric_limits<float>::infinity());
  const torch::Tensor keys = torch::randn({2, 4, 11, 8}), values = torch::randn({2, 4, 11, 5});
  struct Attention {
    torch::Tensor q, k, v, bias;
    double scale;
  };
  const std::vector<Attention> cases = {
      {qkv4[0], qkv4[1], qkv4[2], {}, 1 / std::sqrt(8.0)},
      {qkv4[0], qkv4[1], qkv4[2], pad, 0.5},
      {qkv4[0], qkv4[1], qkv4[2], torch::randn({1, 4, 7, 7}), 1.0},
      {qkv5[0], qkv5[1], qkv5[2], torch::randn({3, 1, 6, 6}), 0.3},
      {qkv4[0], keys, values, torch::randn({11}), 0.25},  // cross-attention: 11 keys for 7 queries, Dv 5
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    const Attention& c = cases[i];
    REQUIRE(mz::onednn::attention_takes(c.q, c.k, c.v, c.bias));
    const torch::Tensor got = mz::onednn::attention(c.q, c.k, c.v, c.bias, c.scale);
    REQUIRE(got.defined());
    const torch::Tensor want = reference(c.q, c.k, c.v, c.bias, c.scale);
    CHECK(got.sizes() == want.sizes());
    CHECK(max_relative(got, want) <= 1e-5);
    CHECK(got.transpose(-3, -2).is_contiguous());  // heads next to head_dim: joining them is a view
    torch::NoGradGuard no_grad;
    CHECK(max_relative(mz::ops::attention(c.q, c.k, c.v, c.bias, 0.1, false, c.scale), want) <= 1e-5);
  }
  // Shapes it does not take; an expanded (zero-stride) key, which oneDNN's matmul refuses: the steps give the numbers.
  CHECK_FALSE(mz::onednn::attention_takes(qkv4[0], keys, values.narrow(2, 0, 10), {}));
  CHECK_FALSE(mz::onednn::attention_takes(qkv4[0], qkv4[1], qkv4[2], torch::randn({3, 7, 7})));
  CHECK_FALSE(mz::onednn::attention_takes(qkv4[0].to(torch::kDouble), qkv4[1], qkv4[2], {}));
  const torch::Tensor expanded = torch::randn({1, 1, 7, 8}).expand({2, 4, 7, 8});
  {
    torch::NoGradGuard no_grad;
    CHECK(max_relative(mz::ops::attention(qkv4[0], expanded, qkv4[2], pad, 0.0, false, 0.5),
                       reference(qkv4[0], expanded, qkv4[2], pad, 0.5)) <= 1e-5);
  }
  // A gradient wanted: the steps, with autograd.
  const torch::Tensor q = qkv4[0].detach().clone().requires_grad_();
  const torch::Tensor out = mz::ops::attention(q, qkv4[1], qkv4[2], pad, 0.0, false, 0.5);
  CHECK(max_relative(out.detach(), reference(q.detach(), qkv4[1], qkv4[2], pad, 0.5)) <= 1e-5);
  out.sum().backward();
  CHECK(q.grad().defined());
  // Dropout in training: the steps, whose dropout zeroes some weights (the product then differs).
  torch::NoGradGuard no_grad;
  CHECK(max_relative(mz::ops::attention(qkv4[0], qkv4[1], qkv4[2], {}, 0.5, true, 1.0),
                     reference(qkv4[0], qkv4[1], qkv4[2], {}, 1.0)) > 1e-3);
}

// ViT's and RoBERTa's attention with its input projection packed: the same numbers, and with padded keys, those of
// LibTorch's fused kernel.
TEST_CASE("ops::SelfAttention with a packed input projection") {
  if (!at::hasMKLDNN()) return;
  torch::manual_seed(0);
  mz::ops::SelfAttention attention(64, 4, 0.0);
  mz::nn::reset_parameters(*attention);
  attention->reset_parameters();
  {
    torch::NoGradGuard no_grad;
    attention->in_proj_bias.normal_();
  }
  attention->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 10, 64});
  const torch::Tensor want = attention(x);
  CHECK(max_relative(want, std::get<0>(at::_native_multi_head_attention(
                               x, x, x, 64, 4, attention->in_proj_weight, attention->in_proj_bias,
                               attention->out_proj->weight, attention->out_proj->bias, {}, false))) <= 1e-5);
  for (const auto& [weight, packed] : attention->linear_weights()) packed->pack(weight);
  attention->out_proj->packed.pack(attention->out_proj->weight);
  CHECK(max_relative(attention(x), want) <= 1e-5);
  // The rows of real tokens against LibTorch's fused kernel given the same key padding mask (true = pad).
  const torch::Tensor pad = torch::arange(10).unsqueeze(0) >= torch::tensor({7, 9}).unsqueeze(1);
  const torch::Tensor fused = std::get<0>(at::_native_multi_head_attention(
      x, x, x, 64, 4, attention->in_proj_weight, attention->in_proj_bias, attention->out_proj->weight,
      attention->out_proj->bias, pad, /*need_weights=*/false, /*average_attn_weights=*/true, /*mask_type=*/1));
  const torch::Tensor real = pad.logical_not().unsqueeze(-1).expand({2, 10, 64});
  const torch::Tensor got = attention(x, pad);
  CHECK(max_relative(got.masked_select(real), fused.masked_select(real)) <= 1e-5);
  CHECK(max_relative(got.masked_select(real), want.masked_select(real)) > 1e-3);  // the mask mattered
}

// Swin's window attention (v1, and v2 whose qkv bias loses its middle third) with qkv and proj packed: the same
// numbers, on a map padded to the window and shifted.
TEST_CASE("swin::ShiftedWindowAttention with packed projections") {
  if (!at::hasMKLDNN()) return;
  torch::manual_seed(0);
  for (bool v2 : {false, true}) {
    CAPTURE(v2);
    mz::swin::ShiftedWindowAttention attention(32, std::vector<std::int64_t>{4, 4}, std::vector<std::int64_t>{2, 2}, 4,
                                               v2);
    mz::nn::reset_parameters(*attention);
    torch::NoGradGuard no_grad;
    for (auto& p : attention->parameters()) p.normal_(0, 0.2);
    attention->eval();
    const torch::Tensor x = torch::randn({2, 9, 10, 32});
    const torch::Tensor want = attention(x);
    attention->qkv->packed.pack(attention->qkv->weight);
    attention->proj->packed.pack(attention->proj->weight);
    CHECK(max_relative(attention(x), want) <= 1e-5);
  }
}

// Every packable linear map of T5 (encoder, decoder and LM head) and of RoBERTa with its masked-LM head, whose
// projection is the token embedding matrix itself: each runs through its nn::PackedWeight in the forward pass (the
// trace probe sees it), and packed, the model gives the same numbers. RoBERTa's layers then leave PyTorch's fused
// kernel and its nested tensor for a padded batch: the same shape (cut to the longest row) and numbers, padding
// rows zero, for padding at the end and elsewhere (the nested tensor keeps each row's first unpadded-count tokens).
TEST_CASE("text models with every linear map packed: T5's query/key/value, the masked-LM head's tied projection") {
  if (!at::hasMKLDNN()) return;
  struct Seen : mz::nn::detail::TraceProbe {
    std::set<const mz::nn::PackedWeight*> weights;
    void produced(mz::nn::Conv2dImpl&, const torch::Tensor&) override {}
    void consumed(mz::nn::FoldableNorm&, const torch::Tensor&) override {}
    void linear_input(const mz::nn::PackedWeight& weight, const torch::Tensor&) override { weights.insert(&weight); }
  };
  const json tiny = {{"num_encoder_layers", 2},
                     {"embedding_dim", 64},
                     {"num_attention_heads", 4},
                     {"ffn_dimension", 128},
                     {"vocab_size", 1000}};
  json t5 = tiny, roberta = tiny;
  t5["num_decoder_layers"] = 2, t5["linear_head"] = true;
  roberta["head"] = {{"type", "mlm"}};
  // T5: 3 + 1 attention maps and 2 feed-forward ones per encoder layer, twice the attention in a decoder layer, the
  // head. RoBERTa: an input and an output projection and 2 feed-forward maps per layer, the head's dense and tied.
  for (const auto& [name, options, maps] :
       {std::tuple{"t5_small", t5, 2 * 6 + 2 * 10 + 1}, {"roberta_base", roberta, 2 * 4 + 2}}) {
    CAPTURE(name);
    torch::manual_seed(0);
    mz::Model model = mz::get_model(name, "", options);
    model.module->eval();
    torch::NoGradGuard no_grad;
    for (auto& p : model.module->parameters()) p.normal_(0, 0.2);
    const mz::TensorDict inputs = mz::model_info(name).example_inputs(2, 12);
    std::vector<mz::TensorDict> padded;
    if (name == std::string("roberta_base")) {
      const std::int64_t pad = 1;  // padding_idx
      for (const auto& [row0, row1] : {std::pair<std::vector<std::int64_t>, std::vector<std::int64_t>>{{9, 10, 11}, {7, 8, 9, 10, 11}},
                                       {{4}, {2, 3}}}) {
        mz::TensorDict d;
        d.insert("input", inputs.at("input").clone());
        for (std::int64_t t : row0) d.at("input")[0][t] = pad;
        for (std::int64_t t : row1) d.at("input")[1][t] = pad;
        padded.push_back(d);
      }
    }
    Seen seen;
    mz::nn::detail::trace_probe() = &seen;
    const mz::TensorDict want = model.run(inputs);
    mz::nn::detail::trace_probe() = nullptr;
    std::vector<mz::TensorDict> padded_want;
    for (const auto& d : padded) padded_want.push_back(model.run(d));
    std::vector<std::pair<torch::Tensor, mz::nn::PackedWeight*>> weights;
    mz::nn::for_each<mz::nn::PackableLinear>(*model.module, [&](mz::nn::PackableLinear& layer) {
      for (const auto& item : layer.linear_weights()) weights.push_back(item);
    });
    CHECK(weights.size() == static_cast<std::size_t>(maps));
    for (const auto& [weight, packed] : weights) {
      CHECK(seen.weights.count(packed) == 1);
      packed->pack(weight);
    }
    CHECK(relative_error(model.run(inputs), want) <= 1e-5);
    for (std::size_t i = 0; i < padded.size(); ++i) CHECK(relative_error(model.run(padded[i]), padded_want[i]) <= 1e-5);
  }
}

// A prepacked convolution (oneDNN, Winograd's algorithm for 3x3 stride 1 where it measures faster) gives
// torch::conv2d's numbers, for ordinary inputs of either memory format (an ordinary output, channels-last when the
// input or the weight is) and in oneDNN's own layout.
TEST_CASE("nn::Conv2d prepacked: torch::conv2d's outputs in every layout") {
  if (!at::hasMKLDNN()) return;
  torch::manual_seed(0);
  for (const auto& [k, s] : std::vector<std::pair<std::int64_t, std::int64_t>>{{3, 1}, {3, 2}, {1, 1}}) {
    const std::int64_t kernel = k, stride = s;  // named, for CAPTURE
    for (bool bias : {true, false}) {
      for (bool weight_channels_last : {false, true}) {
        CAPTURE(kernel);
        CAPTURE(stride);
        CAPTURE(bias);
        CAPTURE(weight_channels_last);
        mz::nn::Conv2d conv(torch::nn::Conv2dOptions(64, 48, kernel).stride(stride).padding(kernel / 2).bias(bias));
        mz::nn::reset_parameters(*conv);
        for (auto& p : conv->parameters()) p.requires_grad_(false);
        if (weight_channels_last) conv->weight.set_data(conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
        torch::NoGradGuard no_grad;
        const torch::Tensor x = torch::randn({2, 64, 40, 36});
        const torch::Tensor want = torch::conv2d(x, conv->weight.contiguous(), conv->bias, stride, kernel / 2);
        conv->prepack();
        for (bool x_channels_last : {false, true}) {
          CAPTURE(x_channels_last);
          const torch::Tensor in = x_channels_last ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
          const torch::Tensor got = conv(in);
          CHECK_FALSE(got.is_mkldnn());
          // (A 1x1 weight's strides do not tell its format: LibTorch deems it contiguous.)
          const bool channels_last = x_channels_last || (weight_channels_last && kernel > 1);
          CHECK(got.is_contiguous(channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous));
          CHECK(max_relative(got, want) <= 1e-5);
        }
        conv->blocked = true;
        const torch::Tensor got = conv(x);
        CHECK(got.is_mkldnn());
        CHECK(max_relative(got.to_dense(), want) <= 1e-5);
      }
    }
  }
}

// In inference, conv_norm_act applies the norm, the residual and a ReLU in place in one pass over the convolution's
// output: the numbers of the steps (norm's forward, add, activation), for BatchNorm2d and FrozenBatchNorm2d, and the
// steps themselves where a gradient is wanted.
TEST_CASE("ops::conv_norm_act: the norm in place in inference, the steps for gradients") {
  torch::manual_seed(0);
  using mz::ops::Act;
  auto conv = mz::nn::Conv2d(torch::nn::Conv2dOptions(6, 5, 3).padding(1).bias(false));
  conv->reset_parameters();
  for (const bool frozen : {false, true}) {
    CAPTURE(frozen);
    auto norm = frozen ? mz::nn::BatchNorm2d(std::shared_ptr<mz::nn::BatchNorm2dImpl>(
                             std::make_shared<mz::nn::FrozenBatchNorm2dImpl>(5)))
                       : mz::nn::BatchNorm2d(5);
    {
      torch::NoGradGuard no_grad;
      norm->running_mean.normal_(0, 0.5);
      norm->running_var.uniform_(0.5, 2);
      norm->weight.normal_(1, 0.5);
      norm->bias.normal_(0, 0.5);
    }
    norm->eval();
    const torch::Tensor x = torch::randn({2, 6, 7, 7}), residual = torch::randn({2, 5, 7, 7});
    for (const auto act : {std::optional<Act>(), std::optional(Act::ReLU), std::optional(Act::Hardswish)}) {
      for (const bool with_residual : {false, true}) {
        const std::string act_name = act ? mz::ops::act_name(*act) : "none";
        CAPTURE(act_name);
        CAPTURE(with_residual);
        const torch::Tensor r = with_residual ? residual : torch::Tensor();
        torch::Tensor want = norm->forward(conv->forward(x)) + (with_residual ? residual : torch::zeros({}));
        if (act) want = mz::ops::activate(*act, want);
        {
          torch::NoGradGuard no_grad;
          CHECK(max_relative(mz::ops::conv_norm_act(*conv, norm.get(), x, act, r), want.detach()) <= 1e-6);
        }
        const torch::Tensor input = x.clone().requires_grad_(true);  // with autograd: the steps, and a gradient
        const torch::Tensor got = mz::ops::conv_norm_act(*conv, norm.get(), input, act, r);
        CHECK(max_relative(got.detach(), want.detach()) <= 1e-6);
        got.sum().backward();
        CHECK((input.grad().defined() && input.grad().abs().sum().item<double>() > 0));
      }
    }
  }
  // The residual is only read, and the input untouched.
  torch::NoGradGuard no_grad;
  auto norm = mz::nn::BatchNorm2d(5);
  norm->eval();
  const torch::Tensor x = torch::randn({1, 6, 4, 4}), residual = torch::randn({1, 5, 4, 4});
  const torch::Tensor x_copy = x.clone(), residual_copy = residual.clone();
  mz::ops::conv_norm_act(*conv, norm.get(), x, Act::ReLU, residual);
  CHECK(torch::equal(x, x_copy));
  CHECK(torch::equal(residual, residual_copy));
}
