// The README's fine-tuning example (tests/docs checks that they stay identical).
#include <modelzoo/modelzoo.h>

#include <iostream>

int main(int argc, char** argv) {
  auto model = mz::resnet50({}, {.num_classes = 10});   // your class count
  if (argc > 1) {                                        // a checkpoint file; or mz::load_weights(*model, weights, ...)
    mz::LoadReport report = mz::load_checkpoint(*model, argv[1], {.skip = {"fc.*"}});
    std::cout << "skipped: " << report.skipped.size() << " tensors of the old head\n";
  }
  mz::freeze(*model, {"conv1.*", "bn1.*", "layer[1-3].*"});   // train layer4 and the new head only
  model->train();
  auto loss = torch::nn::functional::cross_entropy(model->forward(torch::randn({2, 3, 64, 64})),
                                                   torch::tensor({1, 7}));
  loss.backward();
  return model->conv1->weight.grad().defined() ? 1 : 0;       // frozen: no gradient
}
