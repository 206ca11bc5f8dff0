// Builder semantics of DenseNet (its old checkpoint keys: tests/core/test_adapt.cpp) that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("densenet121: state-dict names follow torchvision's") {
  ArchitectureOnly no_download;
  DenseNet dense = densenet121(DenseNet121_Weights::DEFAULT);
  for (const char* k : {"features.conv0.weight", "features.denseblock1.denselayer6.conv2.weight",
                        "features.transition3.norm.num_batches_tracked", "features.norm5.weight"})
    CHECK(has_key(*dense, k));
}
