#include "runtime/backend.h"
