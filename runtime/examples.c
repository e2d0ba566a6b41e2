#include "runtime/examples.h"
