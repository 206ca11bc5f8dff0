// libFuzzer target: parse_checkpoint on arbitrary bytes must throw CheckpointError or return a
// description that satisfies the formats.h guarantees (and whose bytes can all be read).
#include "harness.h"
#include "tests/formats/guarantees.h"
#include "weights/checkpoint/formats/formats.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const mz::formats::Description d = mz::formats::parse_checkpoint({data, size}, "fuzz");
    const std::string bad = mz::formats::test::guarantee_violation(d, size);
    if (!bad.empty()) mz_fuzz::fail("guarantee violated: " + bad);
    volatile std::uint8_t sink = 0;
    for (const auto& t : d.tensors)
      for (std::uint64_t i = 0; i < t.data_size; ++i) sink = sink ^ data[t.data_offset + i];
  } catch (const mz::CheckpointError&) {
  }
  return 0;
}
