#include "runtime/cpu_kernels.h"
