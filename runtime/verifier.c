#include "runtime/verifier.h"
