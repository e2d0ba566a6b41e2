#include "interp/plan.h"
