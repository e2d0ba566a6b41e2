#include "runtime/generate.h"
