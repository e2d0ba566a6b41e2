#include "runtime/schedule.h"
