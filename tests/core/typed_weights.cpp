// Compiled twice by compile_fail.cmake: as is (must compile) and with -DWRONG_WEIGHTS (must not).
#include <modelzoo/models/resnet.h>

int main() {
#ifdef WRONG_WEIGHTS
  auto model = mz::resnet50(mz::ResNet18_Weights::IMAGENET1K_V1);
#else
  auto model = mz::resnet50(mz::ResNet50_Weights::IMAGENET1K_V2);
#endif
  return model ? 0 : 1;
}
