// mz::ops and the box coders against torchvision 0.14.1: random sweeps of nms and roi_align against
// the kernels of torchvision's _C.so (dlopen'ed here, in the test only), and the oracle cases of
// make_cases.py (batched_nms's two paths, box ops, coders). Every comparison is bit-exact.
#include <dlfcn.h>

#include <cstdlib>

#include <doctest/doctest.h>

#include "modelzoo/detection/box_coder.h"
#include "modelzoo/detection/ops.h"
#include "tests/detection_ops/cases.h"

namespace {

using NmsFn = at::Tensor(const at::Tensor&, const at::Tensor&, double);
using RoiAlignFn = at::Tensor(const at::Tensor&, const at::Tensor&, double, int64_t, int64_t, int64_t, bool);

// torchvision's own CPU kernels, registered with the dispatcher when _C.so is loaded.
c10::OperatorHandle torchvision_op(const char* name) {
  static const bool loaded = [] {
    const char* path = std::getenv("MZ_TORCHVISION_C");
    REQUIRE_MESSAGE(path != nullptr, "MZ_TORCHVISION_C (torchvision's _C.so) is not set");
    REQUIRE_MESSAGE(dlopen(path, RTLD_NOW | RTLD_GLOBAL) != nullptr, dlerror());
    return true;
  }();
  (void)loaded;
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
}
struct TorchvisionC {
  c10::TypedOperatorHandle<NmsFn> nms = torchvision_op("torchvision::nms").typed<NmsFn>();
  c10::TypedOperatorHandle<RoiAlignFn> roi_align = torchvision_op("torchvision::roi_align").typed<RoiAlignFn>();
};
TorchvisionC& tv() {
  static TorchvisionC c;
  return c;
}

// Boxes with deliberate ties: coarse coordinates (equal boxes, equal IoUs) and coarse scores.
std::pair<torch::Tensor, torch::Tensor> random_dets(int64_t n, double quant, int levels, torch::Dtype dtype) {
  torch::Tensor xy = torch::rand({n, 2}, torch::kDouble) * 200, wh = torch::rand({n, 2}, torch::kDouble) * 60;
  torch::Tensor boxes = torch::cat({xy, xy + wh}, 1);
  if (quant > 0) boxes = (boxes / quant).round() * quant;
  torch::Tensor scores = torch::rand({n}, torch::kDouble);
  if (levels > 0) scores = (scores * levels).round() / levels;
  if (levels < 0) scores.masked_fill_(torch::rand({n}) < 0.2, NAN);  // NaN scores sort first
  return {boxes.to(dtype), scores.to(dtype)};
}

}  // namespace

TEST_CASE("nms equals torchvision's kernel, ties included") {
  torch::manual_seed(3);
  int cases_run = 0;
  for (int64_t n : {0, 1, 2, 7, 64, 500, 2000})
    for (double quant : {0.0, 5.0, 20.0})
      for (int levels : {0, 4, 50, -1})
        for (auto dtype : {torch::kFloat, torch::kDouble}) {
          auto [boxes, scores] = random_dets(n, quant, levels, dtype);
          for (double thr : {0.0, 0.3, 0.5, 0.7, 1.0}) {
            const torch::Tensor want = tv().nms.call(boxes, scores, thr);
            CHECK_SAME(mz::ops::nms(boxes, scores, thr), want);
            ++cases_run;
          }
        }
  CHECK(cases_run == 7 * 3 * 4 * 2 * 5);
  auto c = case_of("nms", 0);
  CHECK_SAME(mz::ops::nms(c("boxes"), c("scores"), c("thr").item<double>()), c("keep"));
}

TEST_CASE("roi_align equals torchvision's kernel: aligned or not, any sampling ratio, boxes off the map") {
  torch::manual_seed(4);
  for (auto dtype : {torch::kFloat, torch::kDouble})
    for (double scale : {1.0, 0.5, 0.25, 1.0 / 32})
      for (int64_t sr : {-1, 0, 1, 2, 3})
        for (bool aligned : {false, true})
          for (std::array<int64_t, 2> out : {std::array<int64_t, 2>{7, 7}, {14, 14}, {3, 5}, {1, 1}}) {
            const torch::Tensor x = torch::randn({3, 4, 13, 19}, dtype);
            // Boxes inside, across and outside the map, tiny, inverted and huge ones, over three images.
            torch::Tensor xy = torch::rand({24, 2}, dtype) * 140 / scale * 0.25 - 10 / scale;
            torch::Tensor wh = torch::rand({24, 2}, dtype) * 90 / scale * 0.25;
            wh.narrow(0, 0, 3).mul_(0.01);
            wh.narrow(0, 3, 2).mul_(-1);
            wh.narrow(0, 5, 1).mul_(20);
            torch::Tensor batch = torch::randint(0, 3, {24, 1}, dtype);
            torch::Tensor rois = torch::cat({batch, xy, xy + wh}, 1);
            const torch::Tensor want = tv().roi_align.call(x, rois, scale, out[0], out[1], sr, aligned);
            // The channels-last kernel too (for a channels-last map, or many samples on a small one): the same bits.
            for (const torch::Tensor& map : {x, x.contiguous(torch::MemoryFormat::ChannelsLast)}) {
              const torch::Tensor got = mz::ops::roi_align(map, rois, out, scale, sr, aligned);
              CHECK_MESSAGE(same(got, want), "scale " << scale << " sr " << sr << " aligned " << aligned << " out "
                                                      << out[0] << "x" << out[1] << " " << dtype << " channels-last "
                                                      << !map.is_contiguous());
            }
          }
  // The list-of-boxes form, from the Python oracle (torchvision.ops.roi_align).
  for (int i = 0; i < 3; ++i) {
    auto c = case_of("roi_align", i);
    CHECK_SAME(mz::ops::roi_align(c("x"), {c("r0"), c("r1")}, {7, 5}, c("scale").item<double>(),
                                  static_cast<int64_t>(c("sr").item<double>()), c("aligned").item<double>() != 0),
               c("out"));
  }
}

// torchvision's _batched_nms_vanilla (ops/boxes.py), step for step over its nms kernel.
torch::Tensor tv_batched_nms_vanilla(const torch::Tensor& boxes, const torch::Tensor& scores, const torch::Tensor& idxs,
                                     double thr) {
  torch::Tensor keep_mask = torch::zeros_like(scores, torch::kBool);
  const torch::Tensor classes = std::get<0>(torch::_unique(idxs));
  for (int64_t k = 0; k < classes.size(0); ++k) {
    const torch::Tensor members = torch::where(idxs == classes[k])[0];
    const torch::Tensor kept = tv().nms.call(boxes.index({members}), scores.index({members}), thr);
    keep_mask.index_put_({members.index({kept})}, true);
  }
  const torch::Tensor keep = torch::where(keep_mask)[0];
  return keep.index({std::get<1>(scores.index({keep}).sort(0, /*descending=*/true))});
}

TEST_CASE("batched_nms_vanilla equals torchvision's loop over its nms kernel") {
  torch::manual_seed(5);
  int cases_run = 0;
  for (int64_t n : {0, 1, 300, 3000})
    for (int64_t categories : {1, 7, 90})
      for (int levels : {0, 4, -1})
        for (auto dtype : {torch::kFloat, torch::kDouble}) {
          auto [boxes, scores] = random_dets(n, 5.0, levels, dtype);
          // Categories unsorted, negative and sparse, in a narrower integer type too.
          torch::Tensor idxs = torch::randint(categories, {n}, torch::kLong) * 3 - 4;
          if (categories == 7) idxs = idxs.to(torch::kInt);
          if (categories == 90) boxes = boxes.t().contiguous().t();  // column-major rows
          for (double thr : {0.3, 0.5}) {
            CAPTURE(n);
            CAPTURE(categories);
            CAPTURE(levels);
            CAPTURE(thr);
            CHECK_SAME(mz::ops::batched_nms_vanilla(boxes, scores, idxs, thr),
                       tv_batched_nms_vanilla(boxes, scores, idxs, thr));
            ++cases_run;
          }
        }
  CHECK(cases_run == 4 * 3 * 3 * 2 * 2);
}

TEST_CASE("batched_nms takes torchvision's path at 4000 coordinates, with its tie order") {
  const int n = count_cases("batched_nms", "keep");
  REQUIRE(n == 10);
  int vanilla_cases = 0;
  for (int i = 0; i < n; ++i) {
    auto c = case_of("batched_nms", i);
    const double thr = c("thr").item<double>();
    CAPTURE(i);
    CHECK_SAME(mz::ops::batched_nms(c("boxes"), c("scores"), c("idxs"), thr), c("keep"));
    CHECK_SAME(mz::ops::batched_nms_coordinate_trick(c("boxes"), c("scores"), c("idxs"), thr), c("trick"));
    CHECK_SAME(mz::ops::batched_nms_vanilla(c("boxes"), c("scores"), c("idxs"), thr), c("vanilla"));
    vanilla_cases += c("boxes").numel() > 4000;
    if (c("boxes").numel() > 4000)
      CHECK_SAME(c("keep"), c("vanilla"));
    else
      CHECK_SAME(c("keep"), c("trick"));
  }
  CHECK(vanilla_cases == 4);
}

TEST_CASE("box ops equal torchvision's") {
  const int n = count_cases("box", "b1");
  REQUIRE(n == 4);
  for (int i = 0; i < n; ++i) {
    auto c = case_of("box", i);
    CAPTURE(i);
    CHECK_SAME(mz::ops::box_area(c("b1")), c("area"));
    CHECK_SAME(mz::ops::box_iou(c("b1"), c("b2")), c("iou"));
    CHECK_SAME(mz::ops::remove_small_boxes(c("b1"), c("min_size").item<double>()), c("small"));
    for (const char* a : {"xyxy", "xywh", "cxcywh"})
      for (const char* z : {"xyxy", "xywh", "cxcywh"})
        CHECK_MESSAGE(same(mz::ops::box_convert(c("b1"), a, z), c(std::string("convert_") + a + "_" + z)),
                      a << " -> " << z);
  }
  REQUIRE(count_cases("clip", "out") == 3);
  for (int i = 0; i < 3; ++i) {
    auto c = case_of("clip", i);
    CHECK_SAME(mz::ops::clip_boxes_to_image(c("boxes"), {c("h").item<int64_t>(), c("w").item<int64_t>()}), c("out"));
  }
}

TEST_CASE("BoxCoder and BoxLinearCoder equal torchvision's") {
  REQUIRE(count_cases("coder", "decoded") == 3);
  for (int i = 0; i < 3; ++i) {
    auto c = case_of("coder", i);
    CAPTURE(i);
    const torch::Tensor w = c("weights");
    const mz::BoxCoder coder({w[0].item<double>(), w[1].item<double>(), w[2].item<double>(), w[3].item<double>()});
    CHECK_SAME(coder.decode(c("codes"), {c("p0"), c("p1")}), c("decoded"));
    CHECK_SAME(coder.decode_single(c("codes"), torch::cat({c("p0"), c("p1")})), c("single"));
    const auto enc = coder.encode({c("targets").narrow(0, 0, 17), c("targets").narrow(0, 17, 9)}, {c("p0"), c("p1")});
    REQUIRE(enc.size() == 2);
    CHECK_SAME(enc[0], c("enc0"));
    CHECK_SAME(enc[1], c("enc1"));
  }
  REQUIRE(count_cases("linear", "enc") == 2);
  for (int i = 0; i < 2; ++i) {
    auto c = case_of("linear", i);
    const mz::BoxLinearCoder coder(c("normalize").item<double>() != 0);
    CHECK_SAME(coder.encode(c("ref"), c("prop")), c("enc"));
    CHECK_SAME(coder.decode(c("codes"), c("ref")), c("dec"));
  }
}

TEST_CASE("the ops name what is wrong with their arguments") {
  const torch::Tensor boxes = torch::rand({5, 4}), scores = torch::rand({5});
  CHECK_THROWS_WITH_AS(mz::ops::nms(torch::rand({5, 3}), scores, 0.5), "boxes: boxes must be [N, 4], got [5, 3]",
                       mz::UsageError);
  CHECK_THROWS_WITH_AS(mz::ops::nms(boxes, torch::rand({4}), 0.5),
                       "scores: scores must be [N] with N = 5 boxes, got [4]", mz::UsageError);
  CHECK_THROWS_AS(mz::ops::nms(boxes, scores.to(torch::kDouble), 0.5), mz::UsageError);
  CHECK_THROWS_AS(mz::ops::batched_nms(boxes, scores, torch::zeros({4}, torch::kLong), 0.5), mz::UsageError);
  CHECK_THROWS_WITH_AS(mz::ops::roi_align(torch::rand({1, 2, 8, 8}), torch::rand({3, 4}), {2, 2}),
                       "rois: rois must be [K, 5] (batch index, x1, y1, x2, y2), got [3, 4]", mz::UsageError);
  CHECK_THROWS_AS(mz::ops::roi_align(torch::rand({1, 2, 8}), torch::rand({3, 5}), {2, 2}), mz::UsageError);
  torch::Tensor bad_batch = torch::tensor({{1.f, 0.f, 0.f, 4.f, 4.f}});
  CHECK_THROWS_WITH_AS(mz::ops::roi_align(torch::rand({1, 2, 8, 8}), bad_batch, {2, 2}),
                       "rois: a batch index is outside [0, 1)", mz::UsageError);
  CHECK_THROWS_AS(mz::ops::box_convert(boxes, "xyxy", "yxyx"), mz::UsageError);
  CHECK_THROWS_AS(mz::BoxCoder({1., 1., 1., 1.}).decode_single(torch::rand({5, 3}), boxes), mz::UsageError);
  // Empty inputs give empty results, as upstream.
  CHECK(mz::ops::nms(torch::zeros({0, 4}), torch::zeros({0}), 0.5).numel() == 0);
  CHECK(mz::ops::roi_align(torch::rand({1, 2, 8, 8}), torch::zeros({0, 5}), {7, 7}).sizes() ==
        torch::IntArrayRef({0, 2, 7, 7}));
}
