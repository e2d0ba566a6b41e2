#include "runtime/batches.h"
