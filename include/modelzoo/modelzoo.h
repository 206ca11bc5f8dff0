// modelzoo: torchvision's models and weights for LibTorch. Include this one header.
#pragma once

#include "modelzoo/chain.h"
#include "modelzoo/checkpoint.h"
#include "modelzoo/errors.h"
#include "modelzoo/hub.h"
#include "modelzoo/nn.h"
#include "modelzoo/options.h"
#include "modelzoo/registry.h"
#include "modelzoo/weights.h"

#include "modelzoo/resnet.h"
#include "modelzoo/alexnet.h"
#include "modelzoo/densenet.h"
#include "modelzoo/googlenet.h"
#include "modelzoo/inception.h"
#include "modelzoo/squeezenet.h"
#include "modelzoo/vgg.h"
#include "modelzoo/mnasnet.h"
#include "modelzoo/mobilenetv2.h"
#include "modelzoo/mobilenetv3.h"
#include "modelzoo/ops.h"
#include "modelzoo/shufflenet.h"
