#include "runtime/objectives/objectives.h"
