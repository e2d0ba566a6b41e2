#include "runtime/train.h"
