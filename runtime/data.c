#include "runtime/data.h"
