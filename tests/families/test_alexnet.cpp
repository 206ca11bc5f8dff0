// Builder semantics of AlexNet that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("alexnet: state-dict names follow torchvision's module indices") {
  ArchitectureOnly no_download;
  AlexNet alex = alexnet(AlexNet_Weights::DEFAULT);
  for (const char* k : {"features.10.weight", "classifier.1.weight", "classifier.6.bias"}) CHECK(has_key(*alex, k));
}
